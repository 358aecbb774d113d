"""Watches: event types, selectors, resume, bookmarks, timeouts and 410 Expired."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .conftest import pod


class Stream:
    """A raw watch connection that reads one JSON event per line."""

    def __init__(self, handle, path: str) -> None:
        url = urlsplit(handle.url)
        context = ssl.create_default_context(cafile=str(handle.cluster.ca_file))
        self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=10)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {handle.cluster.admin_token}"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200

    def next(self) -> dict:
        line = self.response.readline()
        return json.loads(line) if line else {}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


@pytest.fixture
def stream(simulated_cluster):
    opened = []

    def open_stream(path: str) -> Stream:
        opened.append(Stream(simulated_cluster, path))
        return opened[-1]

    yield open_stream
    for s in opened:
        s.close()


def test_official_client_sees_added_modified_deleted(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    events = []
    done = threading.Event()

    def consume():
        for event in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=2):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                done.set()
                return

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"a": "1"}})
    core.delete_namespaced_config_map("c", "default")
    assert done.wait(5)
    thread.join()
    assert events == [("ADDED", "before"), ("ADDED", "c"), ("MODIFIED", "c"), ("DELETED", "c")]


def test_leaving_and_entering_a_selector(core, stream):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "labels": {"app": "web"}}})
    s = stream("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dweb")
    assert s.next()["type"] == "ADDED"
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"app": "db"}}})
    left = s.next()
    assert left["type"] == "DELETED"
    assert left["object"]["metadata"]["labels"] == {"app": "db"}
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"app": "web"}}})
    assert s.next()["type"] == "ADDED"
    core.create_namespaced_config_map("default", {"metadata": {"name": "other", "labels": {"app": "db"}}})
    core.patch_namespaced_config_map("c", "default", {"data": {"x": "1"}})
    assert s.next()["type"] == "MODIFIED"


def test_field_selector_and_namespace_scope(core, stream):
    core.create_namespace({"metadata": {"name": "other"}})
    s = stream("/api/v1/pods?watch=1&fieldSelector=metadata.name%3Dweb")
    core.create_namespaced_pod("other", pod("skip"))
    core.create_namespaced_pod("other", pod("web"))
    event = s.next()
    assert (event["type"], event["object"]["metadata"]["namespace"]) == ("ADDED", "other")
    ns_stream = stream("/api/v1/namespaces/default/pods?watch=1")
    core.create_namespaced_pod("other", pod("elsewhere"))
    core.create_namespaced_pod("default", pod("here"))
    assert ns_stream.next()["object"]["metadata"]["name"] == "here"


def test_resume_from_a_resource_version_replays_later_events(core, stream):
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    core.delete_namespaced_config_map("a", "default")
    s = stream(
        f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={first.metadata.resource_version}"
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in (s.next(), s.next())] == [
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]


def test_too_old_resource_version_is_an_expired_error_event(core, stream, simulated_cluster):
    old = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}}).metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    simulated_cluster.store.compact()
    s = stream(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}")
    event = s.next()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
    floor = simulated_cluster.store.resource_version
    assert event["object"]["message"] == f"too old resource version: {old} ({floor})"
    assert s.next() == {}


def test_official_client_raises_410_for_an_expired_watch(core, simulated_cluster):
    old = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}}).metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    simulated_cluster.store.compact()
    with pytest.raises(ApiException) as exc:
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=2
            )
        )
    assert exc.value.status == 410


def test_bounded_history_expires_old_versions(core, simulated_cluster, stream):
    simulated_cluster.store._history_size = 3
    old = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}}).metadata.resource_version
    for n in range(5):
        core.patch_namespaced_config_map("a", "default", {"data": {"n": str(n)}})
    event = stream(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}").next()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_a_watcher_that_falls_behind_gets_an_error_event(core, simulated_cluster):
    watcher = simulated_cluster.store.watch("configmaps", "default", resource_version="")
    watcher._max_pending = 2
    for n in range(3):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
    events = list(watcher)
    assert [e[0] for e in events] == ["ADDED", "ADDED", "ERROR"]
    assert events[-1][1]["code"] == 410


def test_bookmarks(core, stream, simulated_cluster):
    s = stream("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true")
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert s.next()["type"] == "ADDED"
    bookmark = s.next()
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "ConfigMap"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) == simulated_cluster.store.resource_version


def test_send_initial_events_ends_with_an_annotated_bookmark(core, stream):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    s = stream(
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )
    assert s.next()["type"] == "ADDED"
    bookmark = s.next()
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_timeout_seconds_ends_the_stream(stream):
    started = time.monotonic()
    s = stream("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
    assert s.next() == {}
    assert 0.9 <= time.monotonic() - started < 3


def test_many_concurrent_watches_all_receive_events(core, stream):
    streams = [stream("/api/v1/namespaces/default/configmaps?watch=1") for _ in range(15)]
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert all(s.next()["object"]["metadata"]["name"] == "a" for s in streams)


def test_closed_clients_are_unregistered(simulated_cluster, stream):
    store = simulated_cluster.store
    s = stream("/api/v1/namespaces/default/configmaps?watch=1")
    deadline = time.monotonic() + 3
    while not store._watchers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(store._watchers) == 1
    s.close()
    while store._watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not store._watchers


def test_stopping_the_cluster_ends_open_watches(simulated_cluster, stream):
    s = stream("/api/v1/namespaces/default/configmaps?watch=1")
    time.sleep(0.1)
    simulated_cluster.cluster.stop()
    assert s.next() == {}


def test_concurrent_writers_and_watchers_see_every_event_in_order(core, stream):
    streams = [stream("/api/v1/namespaces/default/configmaps?watch=1") for _ in range(8)]
    writers = 4
    per_writer = 10

    def write(n: int) -> None:
        for i in range(per_writer):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"w{n}-{i}"}})
            core.patch_namespaced_config_map(f"w{n}-{i}", "default", {"data": {"i": str(i)}})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = writers * per_writer * 2
    sequences = []
    for s in streams:
        events = [s.next() for _ in range(expected)]
        sequences.append(
            [
                (e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
                for e in events
            ]
        )
    versions = [int(rv) for _, _, rv in sequences[0]]
    assert versions == sorted(versions)
    assert len(set(versions)) == expected
    assert all(seq == sequences[0] for seq in sequences)
    assert sum(1 for t, _, _ in sequences[0] if t == "ADDED") == writers * per_writer
