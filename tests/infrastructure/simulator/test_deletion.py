"""Deletion: finalizers, grace periods, preconditions, garbage collection, namespaces, collections."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import eventually, pod


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


def _missing(read) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


def _owned(name: str, owner, block: bool = False) -> dict:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
    if block:
        ref["blockOwnerDeletion"] = True
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


def test_delete_returns_status_for_most_kinds_and_the_object_for_pods(core, raw):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    status = raw("DELETE", "/api/v1/namespaces/default/configmaps/c").json()
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["name"] == "c"
    core.create_namespaced_pod("default", pod("web"))
    deleted = core.delete_namespaced_pod("web", "default")
    assert deleted.metadata.name == "web"
    assert deleted.metadata.deletion_timestamp is not None
    assert _missing(lambda: core.read_namespaced_pod("web", "default"))


def test_finalizers_hold_an_object_until_removed(core):
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("c", "default")
    held = core.read_namespaced_config_map("c", "default")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/hold"]
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map(
            "c", "default", {"metadata": {"finalizers": ["example.com/hold", "more"]}}
        )
    assert exc.value.status == 422
    core.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": None}})
    assert _missing(lambda: core.read_namespaced_config_map("c", "default"))


def test_preconditions(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("c", "default", body={"preconditions": {"uid": "other"}})
    assert exc.value.status == 409
    assert "Precondition failed: UID in precondition: other" in json.loads(exc.value.body)["message"]
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("c", "default", body={"preconditions": {"resourceVersion": "1"}})
    assert exc.value.status == 409
    core.delete_namespaced_config_map(
        "c",
        "default",
        body={
            "preconditions": {
                "uid": created.metadata.uid,
                "resourceVersion": created.metadata.resource_version,
            }
        },
    )
    assert _missing(lambda: core.read_namespaced_config_map("c", "default"))


def test_invalid_propagation_policy_is_400(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("c", "default", propagation_policy="Sometimes")
    assert exc.value.status == 400


def test_background_deletion_collects_dependents(core):
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map("default", _owned("child", owner))
    core.create_namespaced_secret("default", _owned("secret-child", owner))
    core.delete_namespaced_config_map("owner", "default")
    assert _missing(lambda: core.read_namespaced_config_map("child", "default"))
    assert _missing(lambda: core.read_namespaced_secret("secret-child", "default"))


def test_dependents_with_another_live_owner_survive(core):
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "first"}})
    second = core.create_namespaced_config_map("default", {"metadata": {"name": "second"}})
    child = _owned("child", first)
    child["metadata"]["ownerReferences"] += _owned("x", second)["metadata"]["ownerReferences"]
    core.create_namespaced_config_map("default", child)
    core.delete_namespaced_config_map("first", "default")
    assert core.read_namespaced_config_map("child", "default")


def test_orphan_deletion_keeps_dependents_and_drops_the_reference(core):
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map("default", _owned("child", owner))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    assert core.read_namespaced_config_map("child", "default").metadata.owner_references is None


def test_foreground_deletion_waits_for_blocking_dependents(core):
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    held = _owned("child", owner, block=True)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_config_map("default", held)
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", "default")
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    assert waiting.metadata.deletion_timestamp is not None
    assert core.read_namespaced_config_map("child", "default").metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    assert _missing(lambda: core.read_namespaced_config_map("child", "default"))
    assert _missing(lambda: core.read_namespaced_config_map("owner", "default"))


def test_foreground_without_dependents_deletes_at_once(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "alone"}})
    core.delete_namespaced_config_map("alone", "default", propagation_policy="Foreground")
    assert _missing(lambda: core.read_namespaced_config_map("alone", "default"))


def test_scheduled_pods_are_deleted_gracefully(core, simulated_cluster):
    core.create_namespaced_pod("default", pod("web", nodeName="node-1"))
    marked = core.delete_namespaced_pod("web", "default", grace_period_seconds=1)
    assert marked.metadata.deletion_grace_period_seconds == 1
    assert core.read_namespaced_pod("web", "default").metadata.deletion_timestamp is not None
    deadline = time.monotonic() + 5
    while not _missing(lambda: core.read_namespaced_pod("web", "default")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _missing(lambda: core.read_namespaced_pod("web", "default"))


def test_grace_period_zero_deletes_a_scheduled_pod_at_once(core, simulated_cluster):
    simulated_cluster.store.finish_graceful_deletion = False
    core.create_namespaced_pod("default", pod("web", nodeName="node-1"))
    core.delete_namespaced_pod("web", "default")
    assert core.read_namespaced_pod("web", "default").metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("web", "default", grace_period_seconds=0)
    assert _missing(lambda: core.read_namespaced_pod("web", "default"))


def test_namespace_deletion_terminates_then_removes_contents(core):
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "c", "finalizers": ["example.com/hold"]}})
    core.create_namespaced_pod("team", pod("web"))
    core.delete_namespace("team")
    terminating = core.read_namespace("team")
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    assert core.read_namespaced_pod("web", "team").metadata.deletion_timestamp is None
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("team", {"metadata": {"name": "new"}})
    assert exc.value.status == 403
    assert "because it is being terminated" in json.loads(exc.value.body)["message"]
    assert eventually(lambda: _missing(lambda: core.read_namespaced_pod("web", "team")))
    assert core.read_namespaced_config_map("c", "team").metadata.deletion_timestamp is not None
    assert core.read_namespace("team").status.phase == "Terminating"
    core.patch_namespaced_config_map("c", "team", {"metadata": {"finalizers": None}})
    assert _missing(lambda: core.read_namespace("team"))


def test_empty_namespace_goes_shortly(core, raw):
    core.create_namespace({"metadata": {"name": "empty"}})
    returned = raw("DELETE", "/api/v1/namespaces/empty").json()
    assert returned["status"]["phase"] == "Terminating"
    assert eventually(lambda: _missing(lambda: core.read_namespace("empty")))


def test_synchronous_namespace_cleanup(core, simulated_cluster):
    simulated_cluster.store.namespace_cleanup_delay = 0
    core.create_namespace({"metadata": {"name": "now"}})
    core.create_namespaced_config_map("now", {"metadata": {"name": "c"}})
    core.delete_namespace("now")
    assert _missing(lambda: core.read_namespace("now"))


def test_delete_collection_with_selector(core):
    for name, app in (("a", "web"), ("b", "web"), ("c", "db")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"app": app}}})
    core.delete_collection_namespaced_config_map("default", label_selector="app=web")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]


def test_delete_missing_is_404(core):
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("none", "default")
    assert exc.value.status == 404


@pytest.mark.parametrize("name", ["default", "kube-system"])
def test_system_namespaces_may_not_be_deleted(core, name):
    with pytest.raises(ApiException) as exc:
        core.delete_namespace(name)
    assert exc.value.status == 403
    assert json.loads(exc.value.body)["message"] == (
        f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    )
    assert core.read_namespace(name).status.phase == "Active"
