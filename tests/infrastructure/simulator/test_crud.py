"""Create, get, replace, status, errors and the validation/admission hooks, through the official client."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator import admission, validation
from infrastructure.simulator.errors import Cause, invalid

from .conftest import pod


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(exc.value.body)


def test_create_sets_metadata_and_defaults(core):
    created = core.create_namespaced_pod("default", pod("web"))
    meta = created.metadata
    assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid)
    assert int(meta.resource_version) > 0
    assert meta.creation_timestamp is not None
    assert meta.namespace == "default"
    assert meta.generation == 1
    assert created.status.phase == "Pending"
    assert created.status.qos_class == "BestEffort"
    assert created.spec.restart_policy == "Always"
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.spec.service_account_name == "default"
    fetched = core.read_namespaced_pod("web", "default")
    assert fetched.metadata.uid == meta.uid
    assert fetched.metadata.resource_version == meta.resource_version


def test_resource_versions_are_one_cluster_wide_counter(core):
    first = int(core.create_namespace({"metadata": {"name": "a"}}).metadata.resource_version)
    second = int(
        core.create_namespaced_config_map("a", {"metadata": {"name": "c"}}).metadata.resource_version
    )
    third = int(
        core.create_namespaced_secret("default", {"metadata": {"name": "s"}}).metadata.resource_version
    )
    assert first < second < third


def test_generate_name(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert re.fullmatch(r"cfg-[a-z0-9]{5}", created.metadata.name)


def test_name_or_generate_name_is_required(raw):
    response = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {}})
    assert response.status == 422
    assert response.json()["details"]["causes"][0]["field"] == "metadata.name"


def test_already_exists_is_409(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert exc.value.status == 409
    assert _status(exc)["reason"] == "AlreadyExists"
    assert _status(exc)["message"] == 'configmaps "c" already exists'


def test_not_found_is_404_with_the_real_message(simulated_cluster):
    storage = client.StorageV1Api(simulated_cluster.api_client)
    with pytest.raises(ApiException) as exc:
        storage.read_storage_class("fast")
    assert exc.value.status == 404
    assert _status(exc)["message"] == 'storageclasses.storage.k8s.io "fast" not found'
    assert _status(exc)["details"] == {"name": "fast", "group": "storage.k8s.io", "kind": "storageclasses"}


def test_create_in_a_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})
    assert exc.value.status == 404
    assert _status(exc)["message"] == 'namespaces "nowhere" not found'


def test_namespace_in_body_must_match_the_url(raw):
    body = {"metadata": {"name": "c", "namespace": "kube-system"}}
    response = raw("POST", "/api/v1/namespaces/default/configmaps", body)
    assert response.status == 400
    assert "does not match the namespace" in response.json()["message"]


def test_malformed_json_is_400(raw):
    response = raw("POST", "/api/v1/namespaces/default/configmaps", b"{not json")
    assert response.status == 400
    assert response.json()["reason"] == "BadRequest"


def test_wrong_kind_in_body_is_400(raw):
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}
    assert raw("POST", "/api/v1/namespaces/default/configmaps", body).status == 400
    body = {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert raw("POST", "/api/v1/namespaces/default/configmaps", body).status == 400


def test_replace_with_a_stale_resource_version_is_a_conflict(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("c", "default", created)
    assert updated.data == {"a": "2"}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", "default", created)
    assert exc.value.status == 409
    assert _status(exc)["reason"] == "Conflict"
    assert _status(exc)["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_replace_without_changes_keeps_the_resource_version(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    again = core.replace_namespaced_config_map("c", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_name_on_url_must_match_body(raw):
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    response = raw("PUT", "/api/v1/namespaces/default/configmaps/c", {"metadata": {"name": "d"}})
    assert response.status == 400
    assert "does not match the name on the URL" in response.json()["message"]


def test_generation_bumps_on_spec_changes_only(core):
    created = core.create_namespaced_service(
        "default", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert created.spec.cluster_ip
    assert created.spec.ports[0].target_port == 80
    created.metadata.labels = {"a": "b"}
    relabelled = core.replace_namespaced_service("svc", "default", created)
    assert relabelled.metadata.generation == 1
    relabelled.spec.ports[0].port = 81
    respec = core.replace_namespaced_service("svc", "default", relabelled)
    assert respec.metadata.generation == 2


def test_status_subresource_separates_spec_and_status(core):
    core.create_namespaced_pod("default", pod("web"))
    with_status = core.read_namespaced_pod("web", "default")
    with_status.status.phase = "Running"
    with_status.spec.active_deadline_seconds = 5
    after_status = core.replace_namespaced_pod_status("web", "default", with_status)
    assert after_status.status.phase == "Running"
    assert after_status.spec.active_deadline_seconds is None
    after_status.status.phase = "Failed"
    after_status.metadata.labels = {"x": "y"}
    after_main = core.replace_namespaced_pod("web", "default", after_status)
    assert after_main.status.phase == "Running"
    assert after_main.metadata.labels == {"x": "y"}
    patched = core.patch_namespaced_pod_status("web", "default", {"status": {"podIP": "10.0.0.5"}})
    assert patched.status.pod_ip == "10.0.0.5"
    assert patched.status.phase == "Running"


def test_create_resets_status_of_kinds_with_a_status_subresource(core):
    body = pod("web")
    body["status"] = {"phase": "Running"}
    assert core.create_namespaced_pod("default", body).status.phase == "Pending"


def test_dry_run_validates_but_stores_nothing(core, simulated_cluster):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}}, dry_run="All")
    assert created.metadata.name == "c"
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("c", "default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"a": "2"}}, dry_run="All")
    core.delete_namespaced_config_map("c", "default", dry_run="All")
    assert core.read_namespaced_config_map("c", "default").data == {"a": "1"}


def test_dry_run_rejects_other_values(raw):
    response = raw("POST", "/api/v1/namespaces/default/configmaps?dryRun=Some", {"metadata": {"name": "c"}})
    assert response.status == 400


def test_unknown_field_warnings_become_warning_headers(raw, monkeypatch):
    calls = []

    def decode(group, version, kind, body, strict):
        calls.append((kind, strict))
        return ['unknown field "spec.foo"']

    monkeypatch.setattr(validation, "decode", decode)
    response = raw("POST", "/api/v1/namespaces/default/pods", pod("a"))
    assert response.status == 201
    assert response.headers.get_all("Warning") == ['299 - "unknown field \\"spec.foo\\""']
    response = raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Ignore", pod("b"))
    assert response.headers.get_all("Warning") is None
    raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", pod("c"))
    assert calls == [("Pod", False), ("Pod", False), ("Pod", True)]
    assert raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Loud", pod("d")).status == 400


def test_validation_rejections_store_nothing(core, monkeypatch):
    seen = []

    def validate(group, version, kind, obj, old=None):
        seen.append((kind, old is not None))
        if obj.get("data", {}).get("bad"):
            raise invalid(kind, group, obj["metadata"]["name"], [Cause("data", "FieldValueInvalid", "bad")])

    monkeypatch.setattr(validation, "validate", validate)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"bad": "1"}})
    assert exc.value.status == 422
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException):
        core.patch_namespaced_config_map("c", "default", {"data": {"bad": "1"}})
    assert core.read_namespaced_config_map("c", "default").data is None
    assert seen == [("ConfigMap", False), ("ConfigMap", False), ("ConfigMap", True)]


def test_admission_sees_creates_and_updates_but_not_status_writes(core, monkeypatch):
    seen = []

    def admit(store, operation, group, version, kind, namespace, obj, old=None):
        seen.append((operation, kind, namespace, old is not None))
        assert store.get("", "namespaces", None, "default")["metadata"]["name"] == "default"

    monkeypatch.setattr(admission, "admit", admit)
    core.create_namespaced_pod("default", pod("web"))
    core.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"a": "b"}}})
    core.patch_namespaced_pod_status("web", "default", {"status": {"phase": "Running"}})
    assert seen == [("CREATE", "Pod", "default", False), ("UPDATE", "Pod", "default", True)]


def test_cluster_scoped_kinds(simulated_cluster):
    rbac = client.RbacAuthorizationV1Api(simulated_cluster.api_client)
    rbac.create_cluster_role({"metadata": {"name": "reader"}, "rules": []})
    assert rbac.read_cluster_role("reader").metadata.namespace is None
    node = client.NodeV1Api(simulated_cluster.api_client)
    node.create_runtime_class({"metadata": {"name": "sysbox-runc"}, "handler": "sysbox-runc"})
    assert node.read_runtime_class("sysbox-runc").handler == "sysbox-runc"
    leases = client.CoordinationV1Api(simulated_cluster.api_client)
    leases.create_namespaced_lease(
        "kube-system", {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "x"}}
    )
    assert leases.read_namespaced_lease("leader", "kube-system").spec.holder_identity == "x"


def test_list_across_namespaces(core):
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("other", {"metadata": {"name": "b"}})
    names = [(c.metadata.namespace, c.metadata.name) for c in core.list_config_map_for_all_namespaces().items]
    assert names == [("default", "a"), ("other", "b")]


def test_namespaces_get_their_name_label_and_active_phase(core):
    created = core.create_namespace({"metadata": {"name": "team"}})
    assert created.metadata.labels == {"kubernetes.io/metadata.name": "team"}
    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]


def test_unknown_fields_end_to_end(raw):
    body = pod("a")
    body["spec"]["foo"] = 1
    body["spec"]["containers"][0]["bar"] = 2
    warned = raw("POST", "/api/v1/namespaces/default/pods", body)
    assert warned.status == 201
    assert "foo" not in warned.json()["spec"]
    assert any('unknown field \\"spec.foo\\"' in w for w in warned.headers.get_all("Warning"))
    assert "bar" not in warned.json()["spec"]["containers"][0]
    body["metadata"]["name"] = "b"
    strict = raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", body)
    assert strict.status == 400
    assert 'unknown field "spec.foo"' in strict.json()["message"]


def test_replace_with_null_metadata_takes_the_name_from_the_url(raw):
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    response = raw("PUT", "/api/v1/namespaces/default/configmaps/c", {"metadata": None, "data": {"a": "b"}})
    assert response.status == 200
    assert response.json()["metadata"]["name"] == "c"
    assert response.json()["data"] == {"a": "b"}
