"""Lists: label and field selectors, pagination with continue tokens, list resourceVersion."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.errors import APIError
from infrastructure.simulator.resources import lookup
from infrastructure.simulator.selectors import labels_match, parse_field_selector, parse_label_selector

from .conftest import pod


def _obj(labels):
    return {"metadata": {"labels": labels}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("app in (web, db)", {"app": "db"}, True),
        ("app in (web,db)", {"app": "x"}, False),
        ("app notin (web)", {"app": "x"}, True),
        ("app notin (web)", {}, True),
        ("app notin (web)", {"app": "web"}, False),
        ("app", {"app": ""}, True),
        ("app", {}, False),
        ("!app", {}, True),
        ("!app", {"app": "x"}, False),
        ("app=web,tier in (front),!canary", {"app": "web", "tier": "front"}, True),
        ("app=web,tier in (front),!canary", {"app": "web", "tier": "front", "canary": "1"}, False),
        ("", {"a": "b"}, True),
    ],
)
def test_label_selector_grammar(selector, labels, expected):
    assert labels_match(parse_label_selector(selector), _obj(labels)) is expected


@pytest.mark.parametrize("selector", ["a=b=c", "in (x)", "a in x", "!a in (x)", "=x"])
def test_malformed_label_selectors_are_400(selector):
    with pytest.raises(APIError) as exc:
        parse_label_selector(selector)
    assert exc.value.code == 400


def test_field_selectors_per_kind():
    pods = lookup("pods")
    match = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", pods)
    assert match({"metadata": {}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    assert not match({"metadata": {}, "spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}})
    with pytest.raises(APIError) as exc:
        parse_field_selector("spec.hostname=x", pods)
    assert exc.value.message == "field label not supported: spec.hostname"
    with pytest.raises(APIError):
        parse_field_selector("nonsense", pods)
    events = lookup("events")
    match = parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=web,type=Warning,reason=Failed", events
    )
    assert match(
        {
            "metadata": {},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "type": "Warning",
            "reason": "Failed",
        }
    )
    assert parse_field_selector("", pods) is None


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


def test_label_selectors_through_the_client(core):
    core.create_namespaced_pod("default", pod("a", {"app": "web", "tier": "front"}))
    core.create_namespaced_pod("default", pod("b", {"app": "web"}))
    core.create_namespaced_pod("default", pod("c", {"app": "db"}))

    def names(selector):
        return [p.metadata.name for p in core.list_namespaced_pod("default", label_selector=selector).items]

    assert names("app=web") == ["a", "b"]
    assert names("app!=web") == ["c"]
    assert names("app in (db,web),!tier") == ["b", "c"]
    assert names("tier") == ["a"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", label_selector="a in b")
    assert exc.value.status == 400


def test_field_selectors_through_the_client(core, simulated_cluster):
    core.create_namespaced_pod("default", pod("a", nodeName="n1"))
    core.create_namespaced_pod("default", pod("b"))
    simulated_cluster.store.update_status(
        "pods", {"metadata": {"name": "b", "namespace": "default"}, "status": {"phase": "Running"}}
    )
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_pod("other", pod("a"))

    def names(selector, namespace="default"):
        api = core.list_namespaced_pod if namespace else None
        items = (
            api(namespace, field_selector=selector).items
            if api
            else core.list_pod_for_all_namespaces(field_selector=selector).items
        )
        return [(p.metadata.namespace, p.metadata.name) for p in items]

    assert names("spec.nodeName=n1") == [("default", "a")]
    assert names("status.phase=Running") == [("default", "b")]
    assert names("metadata.name=a", namespace=None) == [("default", "a"), ("other", "a")]
    assert names("metadata.namespace=other", namespace=None) == [("other", "a")]
    assert names("metadata.name!=a") == [("default", "b")]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="spec.unknown=x")
    assert exc.value.status == 400


def test_event_field_selectors(core):
    for name, kind, reason in (("e1", "Pod", "Scheduled"), ("e2", "Pod", "Failed"), ("e3", "Node", "Ready")):
        core.create_namespaced_event(
            "default",
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": kind, "name": "web", "namespace": "default"},
                "reason": reason,
                "type": "Warning" if reason == "Failed" else "Normal",
                "message": "m",
            },
        )
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.kind=Pod,involvedObject.name=web,type=Warning"
    ).items
    assert [e.metadata.name for e in events] == ["e2"]
    assert [
        e.metadata.name for e in core.list_namespaced_event("default", field_selector="reason=Ready").items
    ] == ["e3"]


def test_events_k8s_io_regarding_selector(simulated_cluster):
    api = client.EventsV1Api(simulated_cluster.api_client)
    api.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "Bind",
            "reason": "Scheduled",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web"},
        },
    )
    found = api.list_namespaced_event("default", field_selector="regarding.name=web").items
    assert [e.metadata.name for e in found] == ["e"]


def test_pagination_with_limit_and_continue(core):
    for n in range(7):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
    first = core.list_namespaced_config_map("default", limit=3)
    assert [c.metadata.name for c in first.items] == ["c0", "c1", "c2"]
    assert first.metadata.remaining_item_count == 4
    second = core.list_namespaced_config_map("default", limit=3, _continue=first.metadata._continue)
    assert [c.metadata.name for c in second.items] == ["c3", "c4", "c5"]
    third = core.list_namespaced_config_map("default", limit=3, _continue=second.metadata._continue)
    assert [c.metadata.name for c in third.items] == ["c6"]
    assert not third.metadata._continue
    assert first.metadata.resource_version == second.metadata.resource_version


def test_old_continue_tokens_expire_with_410(core, simulated_cluster):
    for n in range(3):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
    token = core.list_namespaced_config_map("default", limit=1).metadata._continue
    core.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
    simulated_cluster.store.compact()
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map("default", limit=1, _continue=token)
    assert exc.value.status == 410
    assert "Expired" in exc.value.body
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map("default", limit=1, _continue="garbage!")
    assert bad.value.status == 400


def test_list_resource_version(core, raw):
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    listing = core.list_namespaced_config_map("default")
    assert int(listing.metadata.resource_version) >= int(created.metadata.resource_version)
    assert listing.kind == "ConfigMapList"
    assert core.list_namespaced_config_map("default", resource_version="0").items[0].metadata.name == "c"
    too_new = raw("GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={10**9}")
    assert too_new.status == 504
    assert "Too large resource version" in too_new.json()["message"]


def test_core_and_events_k8s_io_events_are_the_same_objects(simulated_cluster, core, raw):
    events = client.EventsV1Api(simulated_cluster.api_client)
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "core-made"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "Pulled",
            "message": "pulled it",
            "type": "Normal",
            "count": 2,
            "source": {"component": "kubelet"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingComponent": "kubelet",
            "reportingInstance": "node-1",
            "action": "Pull",
        },
    )
    seen = events.read_namespaced_event("core-made", "default")
    assert seen.regarding.name == "web"
    assert seen.note == "pulled it"
    assert seen.deprecated_count == 2
    assert seen.deprecated_source.component == "kubelet"
    events.patch_namespaced_event("core-made", "default", {"note": "changed"})
    assert core.read_namespaced_event("core-made", "default").message == "changed"
    watch_path = "/apis/events.k8s.io/v1/namespaces/default/events?watch=1&timeoutSeconds=1"
    lines = [json.loads(line) for line in raw("GET", watch_path).body.splitlines()]
    assert [(e["type"], e["object"]["apiVersion"], e["object"]["note"]) for e in lines] == [
        ("ADDED", "events.k8s.io/v1", "changed")
    ]
    listed = [e.metadata.name for e in core.list_namespaced_event("default").items]
    assert listed == ["core-made"]
    events.delete_namespaced_event("core-made", "default")
    assert core.list_namespaced_event("default").items == []
