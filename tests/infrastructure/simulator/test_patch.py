"""Patch formats: unit behaviour of the merge algorithms and PATCH requests through the client."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.errors import APIError
from infrastructure.simulator.patch import apply_config, json_merge, json_patch, strategic_merge

from .conftest import pod


def test_json_merge_patch_merges_maps_replaces_lists_and_deletes_nulls():
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert json_merge(target, {"a": {"b": None, "d": 3}, "l": [3]}) == {"a": {"c": 2, "d": 3}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2]}


def test_strategic_merge_merges_named_lists_and_replaces_tolerations():
    spec = {
        "containers": [
            {
                "name": "a",
                "image": "x",
                "env": [{"name": "E1", "value": "1"}],
                "ports": [{"containerPort": 80}],
            },
            {"name": "b", "image": "y"},
        ],
        "volumes": [{"name": "v1", "emptyDir": {}}],
        "tolerations": [{"key": "k1", "operator": "Exists"}],
    }
    result = strategic_merge(
        {"spec": spec},
        {
            "spec": {
                "containers": [
                    {"name": "a", "env": [{"name": "E2", "value": "2"}], "ports": [{"containerPort": 81}]},
                    {"name": "b", "$patch": "delete"},
                ],
                "volumes": [{"name": "v2", "emptyDir": {}}],
                "tolerations": [{"key": "k2", "operator": "Exists"}],
            }
        },
    )["spec"]
    assert [c["name"] for c in result["containers"]] == ["a"]
    assert result["containers"][0]["image"] == "x"
    assert result["containers"][0]["env"] == [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}]
    assert result["containers"][0]["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert [v["name"] for v in result["volumes"]] == ["v1", "v2"]
    assert result["tolerations"] == [{"key": "k2", "operator": "Exists"}]


def test_strategic_merge_metadata_lists():
    meta = {
        "labels": {"a": "1", "b": "2"},
        "finalizers": ["one"],
        "ownerReferences": [{"uid": "u1", "name": "first"}],
    }
    result = strategic_merge(
        {"metadata": meta},
        {
            "metadata": {
                "labels": {"a": None, "c": "3"},
                "finalizers": ["two"],
                "ownerReferences": [{"uid": "u1", "name": "renamed"}, {"uid": "u2", "name": "second"}],
            }
        },
    )["metadata"]
    assert result["labels"] == {"b": "2", "c": "3"}
    assert result["finalizers"] == ["one", "two"]
    assert result["ownerReferences"] == [{"uid": "u1", "name": "renamed"}, {"uid": "u2", "name": "second"}]
    removed = strategic_merge(
        {"metadata": result}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["one"]}}
    )
    assert removed["metadata"]["finalizers"] == ["two"]


def test_strategic_merge_replace_directive_and_missing_merge_key():
    target = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    replaced = strategic_merge(target, {"spec": {"containers": [{"$patch": "replace"}, {"name": "c"}]}})
    assert replaced["spec"]["containers"] == [{"name": "c"}]
    with pytest.raises(APIError) as exc:
        strategic_merge(target, {"spec": {"containers": [{"image": "x"}]}})
    assert exc.value.code == 400
    assert strategic_merge({"spec": {"x": {"y": 1}}}, {"spec": {"x": {"$patch": "delete"}}}) == {"spec": {}}


def test_json_patch_operations():
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"items": [1, 2]}}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/spec/items/0", "value": 9},
            {"op": "add", "path": "/spec/items/-", "value": 3},
            {"op": "copy", "from": "/spec/items", "path": "/spec/copy"},
            {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
            {"op": "test", "path": "/metadata/labels/b", "value": "2"},
            {"op": "add", "path": "/metadata/annotations", "value": {"x~y/z": "1"}},
            {"op": "test", "path": "/metadata/annotations/x~0y~1z", "value": "1"},
        ],
    )
    assert result == {
        "metadata": {"labels": {"b": "2"}, "annotations": {"x~y/z": "1"}},
        "spec": {"items": [9, 2, 3], "moved": [9, 2, 3]},
    }


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "jump", "path": "/a"}],
        [{"op": "add", "path": "/a/b/c", "value": 1}],
    ],
)
def test_json_patch_failures_are_422(operations):
    with pytest.raises(APIError) as exc:
        json_patch({"a": 1}, operations)
    assert exc.value.code == 422


def test_json_patch_must_be_a_list():
    with pytest.raises(APIError) as exc:
        json_patch({}, {"op": "add"})
    assert exc.value.code == 400


def test_apply_config_keeps_fields_it_does_not_mention():
    live = {"metadata": {"labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}
    assert apply_config(live, {"data": {"x": "9"}}) == {
        "metadata": {"labels": {"a": "1"}},
        "data": {"x": "9", "y": "2"},
    }


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


def test_strategic_merge_through_the_client(core):
    body = pod("web", {"app": "web"})
    body["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    core.create_namespaced_pod("default", body)
    patched = core.patch_namespaced_pod(
        "web",
        "default",
        {
            "metadata": {"labels": {"tier": "front"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]},
        },
    )
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    assert patched.spec.containers[0].image == "busybox:1.37"
    assert [e.name for e in patched.spec.containers[0].env] == ["A"]


def test_merge_and_json_patch_through_raw_http(raw):
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    path = "/api/v1/namespaces/default/configmaps/c"
    merged = raw("PATCH", path, {"data": {"a": None, "b": "2"}}, content_type="application/merge-patch+json")
    assert merged.json()["data"] == {"b": "2"}
    ops = [{"op": "add", "path": "/data/c", "value": "3"}]
    assert raw("PATCH", path, ops, content_type="application/json-patch+json").json()["data"] == {
        "b": "2",
        "c": "3",
    }
    failing = raw(
        "PATCH",
        path,
        [{"op": "test", "path": "/data/b", "value": "x"}],
        content_type="application/json-patch+json",
    )
    assert failing.status == 422
    assert raw("PATCH", path, {"data": {}}, content_type="text/plain").status == 415


def test_patch_with_a_stale_resource_version_conflicts(raw):
    created = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}}).json()
    path = "/api/v1/namespaces/default/configmaps/c"
    raw("PATCH", path, {"data": {"a": "1"}}, content_type="application/merge-patch+json")
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"a": "2"}}
    assert raw("PATCH", path, stale, content_type="application/merge-patch+json").status == 409


def test_patch_of_a_missing_object_is_404(raw):
    response = raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/none",
        {"data": {}},
        content_type="application/merge-patch+json",
    )
    assert response.status == 404


def test_server_side_apply_creates_then_updates(raw):
    path = "/api/v1/namespaces/default/configmaps/applied?fieldManager=tests"
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    first = raw("PATCH", path, yaml.safe_dump(manifest).encode(), content_type="application/apply-patch+yaml")
    assert first.status == 201
    manifest["data"] = {"a": "2"}
    second = raw(
        "PATCH", path, yaml.safe_dump(manifest).encode(), content_type="application/apply-patch+yaml"
    )
    assert second.status == 200
    assert second.json()["data"] == {"a": "2"}
    assert second.json()["metadata"]["uid"] == first.json()["metadata"]["uid"]


def test_server_side_apply_needs_a_field_manager(raw):
    response = raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        b"data: {}",
        content_type="application/apply-patch+yaml",
    )
    assert response.status == 422
    assert "fieldManager: Required value" in response.json()["message"]


def test_patch_with_malformed_body_is_400(raw):
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    response = raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c",
        b"{oops",
        content_type="application/merge-patch+json",
    )
    assert response.status == 400
    assert json.loads(response.body)["reason"] == "BadRequest"


def test_patch_cannot_change_identity(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    patched = core.patch_namespaced_config_map(
        "c", "default", {"metadata": {"uid": created.metadata.uid, "labels": {"a": "b"}}}
    )
    assert patched.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", "default", {"metadata": {"uid": "other"}})
    assert exc.value.status == 409
