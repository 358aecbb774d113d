"""400 / 422 / 403 answers of the simulated cluster over HTTP, through the official client and raw HTTP."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.admission import ENFORCE_LABEL

from .conftest import pod


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(exc.value.body)


# --- 400 from the decoder -------------------------------------------------------------------


def test_wrong_types_are_400_bad_request(raw):
    body = pod("web")
    body["spec"]["containers"] = "busybox"
    response = raw("POST", "/api/v1/namespaces/default/pods", body)
    assert response.status == 400
    assert response.json()["reason"] == "BadRequest"
    assert response.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field '
        "PodSpec.spec.containers of type []v1.Container"
    )
    assert raw("GET", "/api/v1/namespaces/default/pods/web").status == 404


def test_unparsable_quantities_are_400(raw):
    body = pod("web")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "2 GB"}}
    response = raw("POST", "/api/v1/namespaces/default/pods", body)
    assert response.status == 400
    assert response.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_unknown_fields_warn_by_default_and_fail_when_strict(raw):
    body = pod("web")
    body["spec"]["containers"][0]["imagePolicy"] = "Always"
    response = raw("POST", "/api/v1/namespaces/default/pods", body)
    assert response.status == 201
    assert response.headers.get_all("Warning") == [
        '299 - "unknown field \\"spec.containers[0].imagePolicy\\""'
    ]
    body["metadata"]["name"] = "strict"
    response = raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", body)
    assert response.status == 400
    assert response.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field '
        '"spec.containers[0].imagePolicy"'
    )


# --- 422 from validation --------------------------------------------------------------------


def test_invalid_names_are_422_with_causes(core):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", {"metadata": {"name": "My_Config"}})
    assert excinfo.value.status == 422
    status = status_of(excinfo)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(
        'ConfigMap "My_Config" is invalid: metadata.name: Invalid value: "My_Config": a lowercase RFC 1123 '
        "subdomain"
    )
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_missing_container_fields_and_bad_enums_are_422(raw):
    body = pod("web", restartPolicy="Sometimes")
    body["spec"]["containers"].append({"name": "", "image": ""})
    response = raw("POST", "/api/v1/namespaces/default/pods", body)
    assert response.status == 422
    assert [(c["field"], c["reason"]) for c in response.json()["details"]["causes"]] == [
        ("spec.containers[1].name", "FieldValueRequired"),
        ("spec.containers[1].image", "FieldValueRequired"),
        ("spec.restartPolicy", "FieldValueNotSupported"),
    ]


def test_pvc_access_modes_through_the_client(core):
    claim = {
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteAlways"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_persistent_volume_claim("default", claim)
    assert status_of(excinfo)["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "ReadWriteAlways": supported values: "ReadOnlyMany", '
            '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
            "field": "spec.accessModes",
        }
    ]


def test_pod_spec_changes_other_than_the_image_are_422(core):
    core.create_namespaced_pod("default", pod("web"))
    core.patch_namespaced_pod(
        "web", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    with pytest.raises(ApiException) as excinfo:
        core.patch_namespaced_pod("web", "default", {"spec": {"restartPolicy": "Never"}})
    assert excinfo.value.status == 422
    assert status_of(excinfo)["message"].startswith(
        'Pod "web" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`"
    )
    assert core.read_namespaced_pod("web", "default").spec.containers[0].image == "busybox:1.37"


# --- 403 from admission ---------------------------------------------------------------------


def test_pod_security_restricted_namespace_rejects_a_plain_pod(core):
    core.create_namespace({"metadata": {"name": "locked", "labels": {ENFORCE_LABEL: "restricted"}}})
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_pod("locked", pod("web"))
    assert excinfo.value.status == 403
    status = status_of(excinfo)
    assert status["reason"] == "Forbidden"
    assert status["message"].startswith(
        'pods "web" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != '
        "false "
        '(container "main" must set securityContext.allowPrivilegeEscalation=false)'
    )
    hardened = pod(
        "web", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    )
    hardened["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert core.create_namespaced_pod("locked", hardened).metadata.name == "web"


def test_pod_security_baseline_rejects_host_access(core):
    core.create_namespace({"metadata": {"name": "base", "labels": {ENFORCE_LABEL: "baseline"}}})
    body = pod("web", hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_pod("base", body)
    assert status_of(excinfo)["message"] == (
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": host namespaces '
        "(hostNetwork=true), "
        'hostPath volumes (volume "root"), privileged (container "main" must not set '
        "securityContext.privileged=true)"
    )


def test_resource_quota_is_enforced_on_pods_and_claims(core):
    core.create_namespaced_resource_quota(
        "default",
        {"metadata": {"name": "compute"}, "spec": {"hard": {"limits.cpu": "2", "requests.storage": "5Gi"}}},
    )
    without_limits = pod("bare")
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_pod("default", without_limits)
    assert status_of(excinfo)["message"] == (
        'pods "bare" is forbidden: failed quota: compute: must specify limits.cpu for: main'
    )
    sized = pod("a")
    sized["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1500m"}}
    core.create_namespaced_pod("default", sized)
    sized["metadata"]["name"] = "b"
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_pod("default", sized)
    assert excinfo.value.status == 403
    assert status_of(excinfo)["message"] == (
        'pods "b" is forbidden: exceeded quota: compute, requested: limits.cpu=1500m, used: '
        "limits.cpu=1500m, "
        "limited: limits.cpu=2"
    )
    claim = {
        "metadata": {"name": "big"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "6Gi"}}},
    }
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_persistent_volume_claim("default", claim)
    assert status_of(excinfo)["message"].startswith(
        'persistentvolumeclaims "big" is forbidden: exceeded quota: compute, requested: requests.storage=6Gi'
    )


# --- 403 from RBAC --------------------------------------------------------------------------


def test_service_account_is_forbidden_until_a_role_allows_it(simulated_cluster, core):
    token = simulated_cluster.token_for_service_account("default", "builder")
    as_builder = client.CoreV1Api(simulated_cluster.api_client_for_token(token))
    with pytest.raises(ApiException) as excinfo:
        as_builder.create_namespaced_pod("default", pod("web"))
    assert excinfo.value.status == 403
    assert status_of(excinfo)["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:builder" cannot create resource "pods" in '
        "API "
        'group "" in the namespace "default"'
    )
    rbac_api = client.RbacAuthorizationV1Api(simulated_cluster.api_client)
    rbac_api.create_namespaced_role(
        "default",
        {
            "metadata": {"name": "pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
        },
    )
    rbac_api.create_namespaced_role_binding(
        "default",
        {
            "metadata": {"name": "builder-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "default"}],
        },
    )
    assert as_builder.create_namespaced_pod("default", pod("web")).metadata.name == "web"
    with pytest.raises(ApiException) as excinfo:
        as_builder.read_namespaced_pod_log("web", "default")
    assert status_of(excinfo)["message"] == (
        'pods "web" is forbidden: User "system:serviceaccount:default:builder" cannot get resource '
        '"pods/log" in '
        'API group "" in the namespace "default"'
    )
    with pytest.raises(ApiException) as excinfo:
        as_builder.list_node()
    assert status_of(excinfo)["message"] == (
        'nodes is forbidden: User "system:serviceaccount:default:builder" cannot list resource "nodes" in '
        "API "
        'group "" at the cluster scope'
    )


def test_self_subject_access_review_answers_from_the_same_rules(simulated_cluster):
    token = simulated_cluster.token_for_service_account("default", "builder")
    rbac_api = client.RbacAuthorizationV1Api(simulated_cluster.api_client)
    rbac_api.create_cluster_role(
        {
            "metadata": {"name": "lease-editor"},
            "rules": [{"apiGroups": ["*"], "resources": ["leases"], "verbs": ["*"]}],
        }
    )
    rbac_api.create_namespaced_role_binding(
        "default",
        {
            "metadata": {"name": "leases"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "lease-editor",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "default"}],
        },
    )
    authz = client.AuthorizationV1Api(simulated_cluster.api_client_for_token(token))

    def review(namespace: str, resource: str = "leases"):
        attributes = {
            "namespace": namespace,
            "verb": "update",
            "group": "coordination.k8s.io",
            "resource": resource,
        }
        return authz.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}}).status

    allowed = review("default")
    assert allowed.allowed is True
    assert allowed.reason == (
        'RBAC: allowed by RoleBinding "leases/default" of ClusterRole "lease-editor" to ServiceAccount '
        '"builder/default"'
    )
    assert review("kube-system").allowed is False
    assert review("default", "pods").allowed is False
