"""Decoding (400) and validation (422) of request bodies, with the real API server's messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.simulator.errors import APIError
from infrastructure.simulator.validation import decode, validate

RBAC = "rbac.authorization.k8s.io"
SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def make_pod(name: str = "web", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "busybox:1.36",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "ports": [{"containerPort": 8080, "name": "http"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": body,
    }


def make_pvc(name: str = "home", storage: str | None = "1Gi", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {}}}
    if storage is not None:
        body["resources"]["requests"]["storage"] = storage
    body.update(spec)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": body}


def decode_error(body: dict[str, Any], kind: str = "Pod", group: str = "", strict: bool = False) -> APIError:
    with pytest.raises(APIError) as excinfo:
        decode(group, "v1", kind, body, strict)
    assert excinfo.value.code == 400
    assert excinfo.value.reason == "BadRequest"
    return excinfo.value


def invalid_error(obj: dict[str, Any], old: dict[str, Any] | None = None, kind: str = "Pod", group: str = ""):
    with pytest.raises(APIError) as excinfo:
        validate(group, "v1", kind, obj, old)
    assert excinfo.value.code == 422
    assert excinfo.value.reason == "Invalid"
    return excinfo.value


def causes(error: APIError) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in error.details["causes"]]


# --- decode ---------------------------------------------------------------------------------


def test_a_valid_pod_decodes_without_warnings():
    body = make_pod()
    body["metadata"].update(creationTimestamp=None, managedFields=[{"manager": "kubectl"}])
    body["status"] = {"phase": "Pending"}
    assert decode("", "v1", "Pod", body, strict=True) == []


def test_unknown_fields_are_warnings_by_default():
    body = make_pod()
    body["spec"]["foo"] = 1
    body["spec"]["containers"][0]["bar"] = True
    assert decode("", "v1", "Pod", body, strict=False) == [
        'unknown field "spec.containers[0].bar"',
        'unknown field "spec.foo"',
    ]


def test_unknown_fields_are_a_400_under_strict_field_validation():
    body = make_pod()
    body["spec"]["foo"] = 1
    body["metadata"]["Labels"] = {}
    error = decode_error(body, strict=True)
    assert error.message == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field '
        '"metadata.Labels", '
        'unknown field "spec.foo"'
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda b: b["spec"].update(containers="main"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
            "[]v1.Container",
        ),
        (
            lambda b: b["spec"]["containers"][0].update(image=5),
            "json: cannot unmarshal number into Go struct field Container.spec.containers.image of type "
            "string",
        ),
        (
            lambda b: b["spec"].update(activeDeadlineSeconds="5"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.activeDeadlineSeconds of type "
            "int64",
        ),
        (
            lambda b: b["spec"]["containers"][0]["ports"][0].update(containerPort=1.5),
            "json: cannot unmarshal number 1.5 into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort"
            " of type int32",
        ),
        (
            lambda b: b["spec"]["containers"][0]["ports"][0].update(containerPort=2**40),
            f"json: cannot unmarshal number {2**40} into Go struct field ContainerPort.spec.containers.ports."
            "containerPort of type int32",
        ),
        (
            lambda b: b["metadata"].update(labels={"app": 1}),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        ),
        (
            lambda b: b["spec"].update(hostNetwork="yes"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool",
        ),
        (
            lambda b: b.update(spec=[]),
            "json: cannot unmarshal array into Go struct field Pod.spec of type v1.PodSpec",
        ),
        (
            lambda b: b["spec"]["containers"][0]["resources"]["limits"].update(cpu="1.2.3"),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            lambda b: b["spec"]["containers"][0]["resources"]["limits"].update(memory="5Kb"),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            lambda b: b["spec"]["containers"][0]["resources"]["limits"].update(memory="5ki"),
            "unable to parse quantity's suffix",
        ),
        (
            lambda b: b["spec"]["containers"][0]["ports"][0].update(containerPort=True),
            "json: cannot unmarshal bool into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort "
            "of type int32",
        ),
        (
            lambda b: b["metadata"].update(creationTimestamp="yesterday"),
            'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"',
        ),
        (
            lambda b: b["spec"]["containers"][0].update(
                livenessProbe={"httpGet": {"port": True}},
            ),
            "json: cannot unmarshal bool into Go value of type int32",
        ),
    ],
)
def test_wrong_types_are_a_400_like_the_real_decoder(mutate, message):
    body = make_pod()
    mutate(body)
    assert decode_error(body).message == f'Pod in version "v1" cannot be handled as a Pod: {message}'


def test_type_errors_win_over_unknown_fields():
    body = make_pod(foo=1, hostPID="no")
    assert "cannot unmarshal string" in decode_error(body, strict=True).message


def test_quantities_may_be_json_numbers_and_int_or_string_may_be_either():
    body = make_pod()
    body["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 2
    body["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": "http"}}
    body["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    assert decode("", "v1", "Pod", body, strict=True) == []


def test_secret_data_must_be_base64():
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "aGVsbG8=", "b": "%%"},
    }
    error = decode_error(secret, kind="Secret")
    assert (
        error.message
        == 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0'
    )
    secret["data"]["b"] = "abc"
    assert decode_error(secret, kind="Secret").message.endswith("illegal base64 data at input byte 0")
    secret["data"]["b"] = "aGk="
    assert decode("", "v1", "Secret", secret, strict=True) == []


def test_other_groups_use_their_own_schemas():
    role = {
        "metadata": {"name": "r"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "x": 1}],
    }
    assert decode(RBAC, "v1", "Role", role, strict=False) == ['unknown field "rules[0].x"']
    lease = {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": "15"}}
    error = decode_error(lease, kind="Lease", group="coordination.k8s.io")
    assert error.message == (
        'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string into Go struct '
        "field "
        "LeaseSpec.spec.leaseDurationSeconds of type int32"
    )
    event = {
        "metadata": {"name": "e"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod"},
    }
    assert decode("events.k8s.io", "v1", "Event", event, strict=True) == []


def test_a_body_that_is_not_an_object_is_a_400():
    error = decode_error([], strict=False)  # type: ignore[arg-type]
    assert (
        error.message
        == 'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal array into Go value of '
        "type v1.Pod"
    )


def test_kinds_without_a_schema_decode_without_checks():
    assert decode("example.com", "v1", "Widget", {"anything": 1}, strict=True) == []


# --- names, labels, annotations ------------------------------------------------------------


def test_names_must_be_dns_subdomains_for_most_kinds():
    error = invalid_error(make_pod("Web_1"))
    assert (
        error.message == f'Pod "Web_1" is invalid: metadata.name: Invalid value: "Web_1": {SUBDOMAIN_ERROR}'
    )
    assert error.details["name"] == "Web_1"
    assert error.details["kind"] == "Pod"
    assert causes(error) == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "Web_1": {SUBDOMAIN_ERROR}')
    ]
    validate("", "v1", "Pod", make_pod("web.example-1"))


def test_too_long_names_get_both_messages():
    name = "a" * 250 + "-"
    error = invalid_error(make_pvc(name * 2), kind="PersistentVolumeClaim")
    assert [c[2] for c in causes(error)] == [
        f'Invalid value: "{name * 2}": must be no more than 253 characters',
        f'Invalid value: "{name * 2}": {SUBDOMAIN_ERROR}',
    ]


def test_namespace_names_must_be_dns_labels():
    error = invalid_error({"metadata": {"name": "team.a"}}, kind="Namespace")
    assert causes(error) == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "team.a": {LABEL_ERROR}')
    ]


def test_service_names_must_be_dns_1035_labels():
    service = {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}
    error = invalid_error(service, kind="Service")
    assert causes(error)[0][2] == (
        'Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '
        "'-', "
        "start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_rbac_names_are_path_segments():
    validate(RBAC, "v1", "ClusterRole", {"metadata": {"name": "system:controller:x"}, "rules": []})
    error = invalid_error({"metadata": {"name": "a/b%"}, "rules": []}, kind="ClusterRole", group=RBAC)
    assert error.message.startswith('ClusterRole.rbac.authorization.k8s.io "a/b%" is invalid: [')
    assert error.details["group"] == RBAC
    assert [c[2] for c in causes(error)] == [
        "Invalid value: \"a/b%\": may not contain '/'",
        "Invalid value: \"a/b%\": may not contain '%'",
    ]
    assert causes(invalid_error({"metadata": {"name": ".."}}, kind="Role", group=RBAC))[0][2] == (
        "Invalid value: \"..\": may not be '..'"
    )


def test_a_name_or_generate_name_is_required():
    error = invalid_error({"metadata": {}}, kind="ConfigMap")
    assert (
        error.message
        == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )
    validate("", "v1", "ConfigMap", {"metadata": {"generateName": "cm-"}})
    assert causes(invalid_error({"metadata": {"generateName": "Cm-"}}, kind="ConfigMap"))[0][0] == (
        "metadata.generateName"
    )


def test_label_keys_and_values_are_checked():
    body = make_pod()
    body["metadata"]["labels"] = {"bad key": "ok", "example.com/ok": "bad value!", "a/b/c": "", "/x": "y"}
    assert causes(invalid_error(body)) == [
        (
            "metadata.labels",
            "FieldValueInvalid",
            "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', "
            "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "metadata.labels",
            "FieldValueInvalid",
            'Invalid value: "bad value!": a valid label must be an empty string or consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?"
            "[A-Za-z0-9])?')",
        ),
        (
            "metadata.labels",
            "FieldValueInvalid",
            "Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
            "optional "
            "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        ("metadata.labels", "FieldValueInvalid", 'Invalid value: "/x": prefix part must be non-empty'),
    ]


def test_long_label_values_and_annotation_keys():
    body = make_pod()
    body["metadata"]["labels"] = {"a": "v" * 64}
    body["metadata"]["annotations"] = {"Example.COM/Key": "fine", "-bad": "x"}
    found = causes(invalid_error(body))
    assert [c[:2] for c in found] == [
        ("metadata.labels", "FieldValueInvalid"),
        ("metadata.annotations", "FieldValueInvalid"),
    ]
    assert found[0][2] == f'Invalid value: "{"v" * 64}": must be no more than 63 characters'
    assert found[1][2].startswith('Invalid value: "-bad": name part must consist of alphanumeric characters')


def test_annotations_are_limited_in_total_size():
    body = make_pod()
    body["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert causes(invalid_error(body)) == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes")
    ]


def test_finalizers_and_owner_references():
    body = make_pod()
    body["metadata"]["finalizers"] = ["example.com/ok", "bad finalizer"]
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Secret", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "", "kind": "Secret", "name": "", "uid": "2", "controller": True},
    ]
    found = causes(invalid_error(body))
    assert [c[:2] for c in found] == [
        ("metadata.finalizers[1]", "FieldValueInvalid"),
        ("metadata.ownerReferences.apiVersion", "FieldValueInvalid"),
        ("metadata.ownerReferences.name", "FieldValueInvalid"),
        ("metadata.ownerReferences", "FieldValueInvalid"),
    ]
    assert found[1][2] == 'Invalid value: "": version must not be empty'
    assert found[2][2] == 'Invalid value: "": must not be empty'
    assert found[3][2].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for Secret/a and '
        "Secret/"
    )


# --- pods -----------------------------------------------------------------------------------


def test_a_valid_pod_passes():
    validate("", "v1", "Pod", make_pod())


def test_container_name_and_image_are_required():
    body = make_pod()
    body["spec"]["containers"].append({"name": "", "image": ""})
    body["spec"]["containers"].append({"name": "Side_Car", "image": "x"})
    body["spec"]["containers"].append({"name": "main", "image": "x"})
    assert causes(invalid_error(body)) == [
        ("spec.containers[1].name", "FieldValueRequired", "Required value"),
        ("spec.containers[1].image", "FieldValueRequired", "Required value"),
        ("spec.containers[2].name", "FieldValueInvalid", f'Invalid value: "Side_Car": {LABEL_ERROR}'),
        ("spec.containers[3].name", "FieldValueDuplicate", 'Duplicate value: "main"'),
    ]


def test_containers_are_required():
    assert causes(invalid_error(make_pod(containers=[], volumes=[]))) == [
        ("spec.containers", "FieldValueRequired", "Required value")
    ]


def test_init_container_names_share_the_namespace_of_names():
    body = make_pod(initContainers=[{"name": "main", "image": "x"}])
    assert causes(invalid_error(body)) == [
        ("spec.initContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "main"')
    ]


@pytest.mark.parametrize(
    ("field", "value", "path", "supported"),
    [
        ("restartPolicy", "Sometimes", "spec.restartPolicy", '"Always", "OnFailure", "Never"'),
        (
            "dnsPolicy",
            "Google",
            "spec.dnsPolicy",
            '"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
        ),
    ],
)
def test_pod_enums(field, value, path, supported):
    error = invalid_error(make_pod(**{field: value}))
    assert causes(error) == [
        (path, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {supported}')
    ]
    assert error.message == (
        f'Pod "web" is invalid: {path}: Unsupported value: "{value}": supported values: {supported}'
    )


def test_container_enums_ports_and_env():
    body = make_pod()
    container = body["spec"]["containers"][0]
    container["imagePullPolicy"] = "Sometimes"
    container["terminationMessagePolicy"] = "Maybe"
    container["ports"] = [
        {"containerPort": 0, "name": "HTTP"},
        {"containerPort": 70000, "protocol": "ICMP", "hostPort": 99999, "name": "web"},
        {"containerPort": 81, "name": "web"},
    ]
    container["env"] = [{"name": ""}, {"name": "A=B"}, {"name": "OK"}]
    assert causes(invalid_error(body)) == [
        (
            "spec.containers[0].imagePullPolicy",
            "FieldValueNotSupported",
            'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
        ),
        (
            "spec.containers[0].terminationMessagePolicy",
            "FieldValueNotSupported",
            'Unsupported value: "Maybe": supported values: "File", "FallbackToLogsOnError"',
        ),
        (
            "spec.containers[0].ports[0].name",
            "FieldValueInvalid",
            'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        ),
        (
            "spec.containers[0].ports[0].name",
            "FieldValueInvalid",
            'Invalid value: "HTTP": must contain at least one letter (a-z)',
        ),
        ("spec.containers[0].ports[0].containerPort", "FieldValueRequired", "Required value"),
        (
            "spec.containers[0].ports[1].containerPort",
            "FieldValueInvalid",
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "spec.containers[0].ports[1].hostPort",
            "FieldValueInvalid",
            "Invalid value: 99999: must be between 1 and 65535, inclusive",
        ),
        (
            "spec.containers[0].ports[1].protocol",
            "FieldValueNotSupported",
            'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        ),
        ("spec.containers[0].ports[2].name", "FieldValueDuplicate", 'Duplicate value: "web"'),
        ("spec.containers[0].env[0].name", "FieldValueRequired", "Required value"),
        (
            "spec.containers[0].env[1].name",
            "FieldValueInvalid",
            'Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII '
            "characters other than '='",
        ),
    ]


def test_volumes_need_a_name_and_exactly_one_source():
    body = make_pod(
        volumes=[
            {"name": "data", "emptyDir": {}},
            {"name": "data", "emptyDir": {}},
            {"name": ""},
            {"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}},
            {"name": "host", "hostPath": {"path": "", "type": "Folder"}},
            {"name": "cfg", "configMap": {}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": ""}},
        ]
    )
    assert causes(invalid_error(body)) == [
        ("spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "data"'),
        ("spec.volumes[2].name", "FieldValueRequired", "Required value"),
        ("spec.volumes[2]", "FieldValueRequired", "Required value: must specify a volume type"),
        (
            "spec.volumes[3].secret",
            "FieldValueForbidden",
            "Forbidden: may not specify more than 1 volume type",
        ),
        ("spec.volumes[4].hostPath.path", "FieldValueRequired", "Required value"),
        (
            "spec.volumes[4].hostPath.type",
            "FieldValueNotSupported",
            'Unsupported value: "Folder": supported values: "", "BlockDevice", "CharDevice", "Directory", '
            '"DirectoryOrCreate", "File", "FileOrCreate", "Socket"',
        ),
        ("spec.volumes[5].configMap.name", "FieldValueRequired", "Required value"),
        ("spec.volumes[6].persistentVolumeClaim.claimName", "FieldValueRequired", "Required value"),
    ]


def test_volume_mounts_must_reference_volumes_and_be_unique():
    body = make_pod()
    body["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"},
        {"name": "missing", "mountPath": "/data"},
        {"name": "", "mountPath": ""},
    ]
    assert causes(invalid_error(body)) == [
        ("spec.containers[0].volumeMounts[1].name", "FieldValueNotFound", 'Not found: "missing"'),
        (
            "spec.containers[0].volumeMounts[1].mountPath",
            "FieldValueInvalid",
            'Invalid value: "/data": must be unique',
        ),
        ("spec.containers[0].volumeMounts[2].name", "FieldValueRequired", "Required value"),
        ("spec.containers[0].volumeMounts[2].mountPath", "FieldValueRequired", "Required value"),
    ]


def test_resources_requests_limits_and_names():
    body = make_pod()
    body["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": "1", "gpu": "1"},
        "requests": {"cpu": "2", "memory": "-1Gi", "example.com/fpga": "1"},
    }
    assert causes(invalid_error(body)) == [
        (
            "spec.containers[0].resources.limits[gpu]",
            "FieldValueInvalid",
            'Invalid value: "gpu": must be a standard resource for containers',
        ),
        (
            "spec.containers[0].resources.requests[memory]",
            "FieldValueInvalid",
            'Invalid value: "-1Gi": must be greater than or equal to 0',
        ),
        (
            "spec.containers[0].resources.requests",
            "FieldValueInvalid",
            'Invalid value: "2": must be less than or equal to cpu limit of 1',
        ),
    ]


def test_pod_spec_odds_and_ends():
    body = make_pod(
        activeDeadlineSeconds=0,
        nodeSelector={"disk type": "ssd"},
        serviceAccountName="Builder",
        hostname="Web",
        nodeName="node_1",
        tolerations=[{"operator": "Maybe", "effect": "Sometimes"}, {"operator": "Exists", "value": "x"}],
    )
    assert [c[:2] for c in causes(invalid_error(body))] == [
        ("spec.nodeSelector", "FieldValueInvalid"),
        ("spec.hostname", "FieldValueInvalid"),
        ("spec.nodeName", "FieldValueInvalid"),
        ("spec.serviceAccountName", "FieldValueInvalid"),
        ("spec.activeDeadlineSeconds", "FieldValueInvalid"),
        ("spec.tolerations[0].operator", "FieldValueNotSupported"),
        ("spec.tolerations[0].effect", "FieldValueNotSupported"),
        ("spec.tolerations[1].operator", "FieldValueInvalid"),
    ]


# --- pod updates ----------------------------------------------------------------------------


def test_pod_updates_may_change_image_deadline_and_add_tolerations():
    old = make_pod(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["metadata"]["labels"]["extra"] = "yes"
    validate("", "v1", "Pod", new, old)


def test_pod_updates_may_not_change_other_spec_fields():
    old = make_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["command"] = ["sleep"]
    new["spec"]["restartPolicy"] = "Never"
    error = invalid_error(new, old)
    [(field, reason, message)] = causes(error)
    assert (field, reason) == ("spec", "FieldValueForbidden")
    assert message == (
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
        "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously "
        "negative)\n  spec.containers[0].command\n  spec.restartPolicy"
    )


def test_pod_update_deadline_rules_and_removed_tolerations():
    old = make_pod(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 200
    assert causes(invalid_error(longer, old))[0] == (
        "spec.activeDeadlineSeconds",
        "FieldValueInvalid",
        "Invalid value: 200: must be less than or equal to previous value",
    )
    unset = copy.deepcopy(old)
    del unset["spec"]["activeDeadlineSeconds"]
    assert causes(invalid_error(unset, old))[0] == (
        "spec.activeDeadlineSeconds",
        "FieldValueInvalid",
        "Invalid value: null: must not update from a positive integer to nil value",
    )
    fewer = copy.deepcopy(old)
    fewer["spec"]["tolerations"] = []
    assert causes(invalid_error(fewer, old)) == [
        (
            "spec.tolerations",
            "FieldValueForbidden",
            "Forbidden: existing toleration can not be modified except its tolerationSeconds",
        )
    ]
    reseconded = make_pod(
        tolerations=[{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 9}]
    )
    previous = make_pod(
        tolerations=[{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]
    )
    validate("", "v1", "Pod", reseconded, previous)


def test_pod_update_grace_period_may_only_go_from_negative_to_one():
    old = make_pod(terminationGracePeriodSeconds=-1)
    validate("", "v1", "Pod", make_pod(terminationGracePeriodSeconds=1), old)
    assert causes(invalid_error(make_pod(terminationGracePeriodSeconds=5), old))[0][:2] == (
        "spec",
        "FieldValueForbidden",
    )
    assert causes(
        invalid_error(make_pod(terminationGracePeriodSeconds=5), make_pod(terminationGracePeriodSeconds=30))
    )[0][2].endswith("\n  spec.terminationGracePeriodSeconds")


def test_metadata_name_is_immutable():
    old = make_pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    assert causes(invalid_error(new, old)) == [
        ("metadata.name", "FieldValueInvalid", 'Invalid value: "other": field is immutable')
    ]
    namespace = {"metadata": {"name": "team-a", "uid": "1"}}
    renamed = {"metadata": {"name": "team-b", "uid": "1"}}
    assert causes(invalid_error(renamed, namespace, kind="Namespace"))[0][2] == (
        'Invalid value: "team-b": field is immutable'
    )


# --- persistent volume claims ---------------------------------------------------------------


def test_pvc_access_modes_and_storage():
    error = invalid_error(
        make_pvc(storage=None, accessModes=["ReadWriteSometimes"]), kind="PersistentVolumeClaim"
    )
    assert causes(error) == [
        (
            "spec.accessModes",
            "FieldValueNotSupported",
            'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", '
            '"ReadWriteOnce", "ReadWriteOncePod"',
        ),
        ("spec.resources[storage]", "FieldValueRequired", "Required value"),
    ]
    error = invalid_error(make_pvc(storage="0", accessModes=[]), kind="PersistentVolumeClaim")
    assert causes(error) == [
        ("spec.accessModes", "FieldValueRequired", "Required value: at least 1 access mode is required"),
        ("spec.resources[storage]", "FieldValueInvalid", 'Invalid value: "0": must be greater than zero'),
    ]
    error = invalid_error(
        make_pvc(
            accessModes=["ReadWriteOncePod", "ReadOnlyMany"], volumeMode="Tape", storageClassName="Fast_SSD"
        ),
        kind="PersistentVolumeClaim",
    )
    assert [c[:2] for c in causes(error)] == [
        ("spec.accessModes", "FieldValueForbidden"),
        ("spec.volumeMode", "FieldValueNotSupported"),
        ("spec.storageClassName", "FieldValueInvalid"),
    ]


def test_pvc_spec_is_immutable_except_growing_a_bound_claim():
    old = make_pvc()
    grown = make_pvc(storage="2Gi")
    [(field, reason, message)] = causes(invalid_error(grown, old, kind="PersistentVolumeClaim"))
    assert (field, reason) == ("spec", "FieldValueForbidden")
    assert message.startswith(
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName "
        "for bound claims\n  spec.resources.requests.storage"
    )
    old["status"] = {"phase": "Bound"}
    validate("", "v1", "PersistentVolumeClaim", grown, old)
    shrunk = make_pvc(storage="512Mi")
    assert causes(invalid_error(shrunk, old, kind="PersistentVolumeClaim")) == [
        (
            "spec.resources.requests.storage",
            "FieldValueForbidden",
            "Forbidden: field can not be less than previous value",
        )
    ]
    other_class = make_pvc(storageClassName="fast")
    assert causes(invalid_error(other_class, old, kind="PersistentVolumeClaim"))[0][0] == "spec"


# --- secrets and config maps ----------------------------------------------------------------


def secret(data: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "data": data, **extra}


def test_immutable_secrets_cannot_change():
    old = secret({"a": "YQ=="}, immutable=True)
    validate("", "v1", "Secret", copy.deepcopy(old), old)
    changed = secret({"a": "Yg=="}, immutable=False)
    assert causes(invalid_error(changed, old, kind="Secret")) == [
        ("immutable", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"),
    ]
    mutable = secret({"a": "YQ=="})
    validate("", "v1", "Secret", secret({"a": "Yg=="}), mutable)


def test_secret_type_keys_and_size():
    retyped = secret({"a": "YQ=="}, type="kubernetes.io/tls")
    assert causes(invalid_error(retyped, secret({"a": "YQ=="}), kind="Secret")) == [
        ("data[tls.crt]", "FieldValueRequired", "Required value"),
        ("data[tls.key]", "FieldValueRequired", "Required value"),
        ("type", "FieldValueInvalid", 'Invalid value: "kubernetes.io/tls": field is immutable'),
    ]
    bad_key = secret({"bad key": "YQ=="})
    assert causes(invalid_error(bad_key, kind="Secret"))[0][:2] == ("data[bad key]", "FieldValueInvalid")
    assert (
        "a valid config key must consist of alphanumeric characters"
        in causes(invalid_error(bad_key, kind="Secret"))[0][2]
    )
    huge = secret({"a": "QUFB" * (400 * 1024)})
    assert causes(invalid_error(huge, kind="Secret")) == [
        ("data", "FieldValueTooLong", "Too long: must have at most 1048576 bytes")
    ]


def test_config_maps_keys_and_immutability():
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    new = {
        "metadata": {"name": "c"},
        "data": {"a": "2", "..x": "3"},
        "binaryData": {"a": "YQ=="},
        "immutable": True,
    }
    assert [c[:2] for c in causes(invalid_error(new, old, kind="ConfigMap"))] == [
        ("data[..x]", "FieldValueInvalid"),
        ("data", "FieldValueInvalid"),
        ("data", "FieldValueForbidden"),
    ]


# --- events ---------------------------------------------------------------------------------


def test_core_events_must_match_the_involved_object_namespace():
    event = {"metadata": {"name": "e", "namespace": "a"}, "involvedObject": {"kind": "Pod", "namespace": "b"}}
    assert causes(invalid_error(event, kind="Event")) == [
        (
            "involvedObject.namespace",
            "FieldValueInvalid",
            'Invalid value: "b": does not match event.namespace',
        )
    ]
    event["involvedObject"]["namespace"] = "a"
    validate("", "v1", "Event", event)


def test_new_style_core_events_need_reporting_fields():
    event = {
        "metadata": {"name": "e", "namespace": "a"},
        "involvedObject": {"kind": "Pod", "namespace": "a"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
    }
    assert [c[:2] for c in causes(invalid_error(event, kind="Event"))] == [
        ("source", "FieldValueRequired"),
        ("reportingInstance", "FieldValueRequired"),
        ("action", "FieldValueRequired"),
        ("reason", "FieldValueRequired"),
    ]


def test_events_k8s_io_events():
    event = {
        "metadata": {"name": "e", "namespace": "a"},
        "type": "Odd",
        "reportingController": "x",
        "action": "y",
    }
    assert causes(invalid_error(event, kind="Event", group="events.k8s.io")) == [
        ("eventTime", "FieldValueRequired", "Required value"),
        ("type", "FieldValueInvalid", 'Invalid value: "": has invalid value: Odd'),
        ("reportingInstance", "FieldValueRequired", "Required value"),
        ("reason", "FieldValueRequired", "Required value"),
    ]
    event.update(
        eventTime="2026-01-01T00:00:00.000000Z",
        type="Normal",
        reportingInstance="i",
        reason="Started",
        action="a",
    )
    validate("events.k8s.io", "v1", "Event", event)


# --- rbac -----------------------------------------------------------------------------------


def test_policy_rules():
    role = {
        "metadata": {"name": "r"},
        "rules": [{"verbs": []}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}],
    }
    assert causes(invalid_error(role, kind="Role", group=RBAC)) == [
        ("rules[0].verbs", "FieldValueRequired", "Required value: verbs must contain at least one value"),
        (
            "rules[0].apiGroups",
            "FieldValueRequired",
            "Required value: resource rules must supply at least one api group",
        ),
        (
            "rules[0].resources",
            "FieldValueRequired",
            "Required value: resource rules must supply at least one resource",
        ),
        (
            "rules[1].nonResourceURLs",
            "FieldValueInvalid",
            'Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs',
        ),
        (
            "rules[1].nonResourceURLs",
            "FieldValueInvalid",
            'Invalid value: []string{"/healthz"}: rules cannot apply to both regular resources and '
            "non-resource URLs",
        ),
    ]
    cluster_role = {"metadata": {"name": "c"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}
    validate(RBAC, "v1", "ClusterRole", cluster_role)
    aggregated = {"metadata": {"name": "a"}, "aggregationRule": {"clusterRoleSelectors": [{}]}, "rules": [{}]}
    validate(RBAC, "v1", "ClusterRole", aggregated)


def binding(**extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "builder"}, {"kind": "User", "name": "alice"}],
        **extra,
    }


def test_role_bindings():
    validate(RBAC, "v1", "RoleBinding", binding())
    bad = binding(
        roleRef={"apiGroup": "example.com", "kind": "Policy", "name": ""},
        subjects=[
            {"kind": "ServiceAccount", "name": "Builder", "apiGroup": RBAC},
            {"kind": "Group", "name": "devs", "apiGroup": "example.com"},
            {"kind": "Robot", "name": ""},
        ],
    )
    assert causes(invalid_error(bad, kind="RoleBinding", group=RBAC)) == [
        (
            "roleRef.apiGroup",
            "FieldValueNotSupported",
            'Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"',
        ),
        (
            "roleRef.kind",
            "FieldValueNotSupported",
            'Unsupported value: "Policy": supported values: "Role", "ClusterRole"',
        ),
        ("roleRef.name", "FieldValueRequired", "Required value"),
        ("subjects[0].name", "FieldValueInvalid", f'Invalid value: "Builder": {SUBDOMAIN_ERROR}'),
        (
            "subjects[0].apiGroup",
            "FieldValueNotSupported",
            'Unsupported value: "rbac.authorization.k8s.io": supported values: ""',
        ),
        (
            "subjects[1].apiGroup",
            "FieldValueNotSupported",
            'Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"',
        ),
        ("subjects[2].name", "FieldValueRequired", "Required value"),
        (
            "subjects[2].kind",
            "FieldValueNotSupported",
            'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        ),
    ]


def test_cluster_role_bindings_need_cluster_roles_and_service_account_namespaces():
    crb = binding()
    assert causes(invalid_error(crb, kind="ClusterRoleBinding", group=RBAC)) == [
        (
            "roleRef.kind",
            "FieldValueNotSupported",
            'Unsupported value: "Role": supported values: "ClusterRole"',
        ),
        ("subjects[0].namespace", "FieldValueRequired", "Required value"),
    ]


def test_role_ref_cannot_change():
    old = binding()
    new = binding(roleRef={"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"})
    assert causes(invalid_error(new, old, kind="RoleBinding", group=RBAC)) == [
        (
            "roleRef",
            "FieldValueInvalid",
            'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
            'Name:"view"}: '
            "cannot change roleRef",
        )
    ]


# --- other kinds ----------------------------------------------------------------------------


def test_network_policies():
    policy = {
        "metadata": {"name": "np"},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
            "policyTypes": ["Ingress", "Sideways"],
            "ingress": [
                {
                    "ports": [{"protocol": "ICMP", "port": 90, "endPort": 80}],
                    "from": [{}, {"ipBlock": {"cidr": "10.0.0.0"}, "podSelector": {}}],
                }
            ],
            "egress": [
                {"to": [{"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}]}
            ],
        },
    }
    assert causes(invalid_error(policy, kind="NetworkPolicy", group="networking.k8s.io")) == [
        (
            "spec.podSelector.matchExpressions[0].values",
            "FieldValueRequired",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            "spec.policyTypes[1]",
            "FieldValueNotSupported",
            'Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
        ),
        (
            "spec.ingress[0].ports[0].protocol",
            "FieldValueNotSupported",
            'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        ),
        (
            "spec.ingress[0].ports[0].endPort",
            "FieldValueInvalid",
            "Invalid value: 80: must be greater than or equal to `port`",
        ),
        ("spec.ingress[0].from[0]", "FieldValueRequired", "Required value: must specify a peer"),
        (
            "spec.ingress[0].from[1]",
            "FieldValueForbidden",
            "Forbidden: may not specify both ipBlock and another peer",
        ),
        (
            "spec.ingress[0].from[1].ipBlock.cidr",
            "FieldValueInvalid",
            'Invalid value: "10.0.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
        ),
        (
            "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].operator",
            "FieldValueInvalid",
            'Invalid value: "Near": not a valid selector operator',
        ),
    ]


def test_services():
    service = {"metadata": {"name": "web"}, "spec": {"type": "Public", "ports": [{"port": 0}, {"port": 80}]}}
    assert causes(invalid_error(service, kind="Service")) == [
        (
            "spec.type",
            "FieldValueNotSupported",
            'Unsupported value: "Public": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
            '"NodePort"',
        ),
        ("spec.ports[0].name", "FieldValueRequired", "Required value"),
        ("spec.ports[0].port", "FieldValueRequired", "Required value"),
        ("spec.ports[1].name", "FieldValueRequired", "Required value"),
    ]
    assert causes(invalid_error({"metadata": {"name": "web"}, "spec": {}}, kind="Service")) == [
        ("spec.ports", "FieldValueRequired", "Required value")
    ]
    validate("", "v1", "Service", {"metadata": {"name": "web"}, "spec": {"clusterIP": "None"}})


def test_storage_and_runtime_classes():
    storage_class = {"metadata": {"name": "fast"}, "provisioner": "example.com/disk", "reclaimPolicy": "Keep"}
    assert causes(invalid_error(storage_class, kind="StorageClass", group="storage.k8s.io")) == [
        (
            "reclaimPolicy",
            "FieldValueNotSupported",
            'Unsupported value: "Keep": supported values: "Delete", "Retain"',
        )
    ]
    old = {"metadata": {"name": "fast"}, "provisioner": "example.com/disk", "parameters": {"a": "1"}}
    new = {"metadata": {"name": "fast"}, "provisioner": "example.com/other"}
    assert [c[0] for c in causes(invalid_error(new, old, kind="StorageClass", group="storage.k8s.io"))] == [
        "parameters",
        "provisioner",
    ]
    runtime_class = {"metadata": {"name": "cvm"}, "handler": "Kata"}
    assert causes(invalid_error(runtime_class, kind="RuntimeClass", group="node.k8s.io"))[0][:2] == (
        "handler",
        "FieldValueInvalid",
    )
    runtime_old = {"metadata": {"name": "cvm"}, "handler": "kata"}
    runtime_new = {"metadata": {"name": "cvm"}, "handler": "runc"}
    assert causes(invalid_error(runtime_new, runtime_old, kind="RuntimeClass", group="node.k8s.io")) == [
        ("handler", "FieldValueInvalid", 'Invalid value: "runc": field is immutable')
    ]


def test_leases_and_quotas():
    lease = {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}}
    assert causes(invalid_error(lease, kind="Lease", group="coordination.k8s.io")) == [
        ("spec.leaseDurationSeconds", "FieldValueInvalid", "Invalid value: 0: must be greater than 0"),
        (
            "spec.leaseTransitions",
            "FieldValueInvalid",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
    ]
    quota = {
        "metadata": {"name": "q"},
        "spec": {
            "hard": {"cpu": "-1", "gpus": "1", "count/pods": "5", "fast.storageclass.storage.k8s.io/x": "1"}
        },
    }
    assert causes(invalid_error(quota, kind="ResourceQuota")) == [
        ("spec.hard[cpu]", "FieldValueInvalid", 'Invalid value: "-1": must be greater than or equal to 0'),
        (
            "spec.hard[gpus]",
            "FieldValueInvalid",
            'Invalid value: "gpus": must be a standard resource for quota',
        ),
    ]


def test_namespace_finalizers():
    namespace = {"metadata": {"name": "ns"}, "spec": {"finalizers": ["kubernetes", "no good"]}}
    assert causes(invalid_error(namespace, kind="Namespace"))[0][0] == "spec.finalizers[1]"


# --- robustness -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=20,
)
KINDS = [
    ("", "Pod"),
    ("", "PersistentVolumeClaim"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("", "Service"),
    ("", "Namespace"),
    ("", "Event"),
    ("", "ResourceQuota"),
    ("events.k8s.io", "Event"),
    (RBAC, "Role"),
    (RBAC, "ClusterRole"),
    (RBAC, "RoleBinding"),
    (RBAC, "ClusterRoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("storage.k8s.io", "StorageClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("coordination.k8s.io", "Lease"),
]
POD_FIELDS = st.sampled_from(["metadata", "spec", "status", "data", "rules", "roleRef", "subjects", "type"])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.dictionaries(POD_FIELDS, JSON, max_size=4),
    st.one_of(st.none(), st.dictionaries(POD_FIELDS, JSON, max_size=4)),
)
def test_validate_and_decode_only_ever_raise_api_errors(kind, obj, old):
    group, name = kind
    for call in (lambda: validate(group, "v1", name, obj, old), lambda: decode(group, "v1", name, obj, True)):
        try:
            call()
        except APIError as exc:
            assert exc.code in (400, 422)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.dictionaries(st.sampled_from(["name", "image", "spec", "containers"]), JSON), lambda c: st.lists(c)
    )
)
def test_pods_with_arbitrary_spec_shapes_only_raise_api_errors(spec):
    body = {"metadata": {"name": "p"}, "spec": spec}
    for strict in (True, False):
        try:
            decode("", "v1", "Pod", body, strict)
            validate("", "v1", "Pod", body, body)
        except APIError as exc:
            assert exc.code in (400, 422)
