"""Fault injection: which requests fail, how, and how often."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.faults import KIND_429, KIND_DELAY, KIND_DROP, FaultInjector, is_watch

from .profile_helpers import eventually, pod_manifest, running_profile

PODS = "/api/v1/namespaces/ns/pods"


def test_faults_match_verb_and_path_and_are_used_up():
    faults = FaultInjector()
    faults.add(verb="create", path_regex=r"/pods$", count=2)
    assert faults.check("GET", PODS) is None
    assert faults.check("POST", "/api/v1/namespaces/ns/secrets") is None
    first = faults.check("POST", PODS)
    assert first is not None
    assert first.kind == "500"
    assert faults.check("POST", PODS) is first
    assert first.hits == 2
    assert faults.check("POST", PODS) is None
    assert faults.pending() == []


@pytest.mark.parametrize(
    ("verb", "method", "path", "hit"),
    [
        ("watch", "GET", f"{PODS}?watch=true", True),
        ("watch", "GET", "/api/v1/watch/namespaces/ns/pods", True),
        ("watch", "GET", PODS, False),
        ("list", "GET", PODS, True),
        ("list", "GET", f"{PODS}?watch=1&labelSelector=a", False),
        ("get", "GET", f"{PODS}/p", True),
        ("update", "PUT", f"{PODS}/p", True),
        ("patch", "PUT", f"{PODS}/p", False),
        ("delete", "DELETE", f"{PODS}/p", True),
        ("GET", "get", PODS, True),
        ("POST", "GET", PODS, False),
        (None, "PATCH", PODS, True),
    ],
)
def test_verbs(verb, method, path, hit):
    faults = FaultInjector()
    faults.add(verb=verb)
    assert (faults.check(method, path) is not None) is hit


def test_path_regex_sees_the_query_string():
    faults = FaultInjector()
    faults.add(path_regex=r"labelSelector=app%3Dx")
    assert faults.check("GET", f"{PODS}?labelSelector=app%3Dy") is None
    assert faults.check("GET", f"{PODS}?labelSelector=app%3Dx") is not None


def test_first_armed_fault_wins():
    faults = FaultInjector()
    faults.add(kind=KIND_DROP)
    faults.add(kind=KIND_DELAY, delay=5)
    assert faults.check("GET", PODS).kind == KIND_DROP
    delayed = faults.check("GET", PODS)
    assert (delayed.kind, delayed.delay) == (KIND_DELAY, 5)
    assert faults.check("GET", PODS) is None


def test_error_responses_are_real_status_objects():
    faults = FaultInjector()
    throttled = faults.add(kind=KIND_429, retry_after=7).error()
    assert throttled.code == 429
    assert throttled.headers == {"Retry-After": "7"}
    status = throttled.status()
    assert status["reason"] == "TooManyRequests"
    assert status["details"]["retryAfterSeconds"] == 7
    internal = faults.add().error().status()
    assert (internal["code"], internal["reason"], internal["kind"]) == (500, "InternalError", "Status")


def test_clear():
    faults = FaultInjector()
    faults.add(count=5)
    faults.clear()
    assert faults.check("GET", PODS) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kind": "teapot"}, "fault kind"), ({"count": 0}, "at least 1")],
)
def test_invalid_faults_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaultInjector().add(**kwargs)


def test_cluster_wide_faults_call_the_server_hooks():
    faults = FaultInjector()
    with pytest.raises(RuntimeError, match="has not bound the close_watches fault"):
        faults.close_watches()
    calls = []
    faults.bind(close_watches=lambda: calls.append("close"))
    faults.bind(
        expire_resource_versions=lambda: calls.append("expire"), restart=lambda: calls.append("restart")
    )
    faults.close_watches()
    faults.expire_resource_versions()
    faults.restart()
    assert calls == ["close", "expire", "restart"]


def test_is_watch():
    assert is_watch(f"{PODS}?watch=true")
    assert not is_watch(f"{PODS}?watch=false")


# --- Through the simulated API server and the official client ---------------------------------------


@pytest.fixture
def core(simulated_cluster):
    return client.CoreV1Api(simulated_cluster.api_client)


@pytest.fixture
def faults(simulated_cluster):
    return simulated_cluster.cluster.faults


def test_500_for_the_next_n_matching_requests(core, faults):
    faults.add(verb="list", path_regex=r"/namespaces/default/pods$", count=2)
    core.list_namespaced_secret("default")
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            core.list_namespaced_pod("default")
        assert failed.value.status == 500
        assert json.loads(failed.value.body)["reason"] == "InternalError"
    assert core.list_namespaced_pod("default").items == []


def test_429_carries_retry_after(core, faults):
    faults.add(verb="create", kind=KIND_429, retry_after=3)
    with pytest.raises(ApiException) as throttled:
        core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "3"
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})


def test_delay_past_the_client_timeout(core, faults):
    faults.add(verb="get", path_regex="/namespaces/default$", count=10, kind=KIND_DELAY, delay=1.0)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.read_namespace("default", _request_timeout=0.2)
    faults.clear()
    assert core.read_namespace("default").metadata.name == "default"


def test_dropped_connection(core, faults):
    faults.add(path_regex="/namespaces/default$", count=10, kind=KIND_DROP)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.read_namespace("default")
    faults.clear()
    assert core.read_namespace("default").metadata.name == "default"


def test_close_watches_ends_open_streams(core, faults):
    ended = threading.Event()

    def follow():
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=30):
            pass
        ended.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert not ended.is_set()
    faults.close_watches()
    assert ended.wait(5)


def test_expired_resource_versions_answer_410(core, faults):
    version = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    faults.expire_resource_versions()
    with pytest.raises(ApiException) as expired:
        for event in watch.Watch().stream(
            core.list_namespaced_pod, "default", resource_version=version, timeout_seconds=2
        ):
            if event["type"] == "ERROR":
                raise ApiException(status=event["raw_object"]["code"])
    assert expired.value.status == 410


def test_restart_keeps_state_and_port(tmp_path):
    with running_profile("demo", tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        api.create_namespaced_pod("default", pod_manifest("before"))
        eventually(lambda: api.read_namespaced_pod("before", "default").status.phase == "Running")
        url, uid = handle.url, api.read_namespaced_pod("before", "default").metadata.uid
        handle.cluster.faults.restart()
        assert handle.url == url
        assert api.read_namespaced_pod("before", "default").metadata.uid == uid
        api.create_namespaced_pod("default", pod_manifest("after"))
        eventually(lambda: api.read_namespaced_pod("after", "default").status.phase == "Running")
