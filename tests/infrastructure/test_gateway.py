"""The Kubernetes gateway: typed errors, idempotent verbs, watches and log follows (simulated
cluster over HTTP with the official client)."""

from __future__ import annotations

import json
import threading

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from infrastructure import gateway as gw
from infrastructure.simulator.resources import by_api_version_kind


def api_error(status: int, message: str = "", reason: str = "", headers=None) -> ApiException:
    exc = ApiException(status=status, reason="HTTP reason")
    exc.body = json.dumps({"message": message, "reason": reason})
    exc.headers = headers
    return exc


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (api_error(404, 'pods "x" not found', "NotFound"), gw.NotFound, 'pods "x" not found'),
        (api_error(409, "exists", "AlreadyExists"), gw.AlreadyExists, "exists"),
        (api_error(409, "object was modified", "Conflict"), gw.Conflict, "object was modified"),
        (api_error(403, "exceeded quota: q, requested: pods=1", "Forbidden"), gw.QuotaExceeded, None),
        (api_error(403, 'violates PodSecurity "baseline:latest"', "Forbidden"), gw.PodSecurityDenied, None),
        (api_error(403, "cannot create pods", "Forbidden"), gw.Forbidden, "cannot create pods"),
        (api_error(401, "Unauthorized", "Unauthorized"), gw.Unauthorized, "Unauthorized"),
        (api_error(422, "spec.containers: Required value", "Invalid"), gw.Invalid, None),
        (api_error(410, "too old resource version", "Expired"), gw.Gone, None),
        (api_error(500, "etcd down", "InternalError"), gw.Unavailable, "etcd down"),
        (urllib3.exceptions.ProtocolError("connection reset"), gw.Unavailable, None),
        (TimeoutError("timed out"), gw.Unavailable, None),
    ],
)
def test_translate(exc, kind, message):
    error = gw.translate(exc)
    assert type(error) is kind
    if message is not None:
        assert error.message == message


def test_retry_after_is_kept():
    error = gw.translate(api_error(429, "slow down", "TooManyRequests", {"Retry-After": "3"}))
    assert (type(error), error.retry_after, error.transient) == (gw.Unavailable, 3.0, True)


def test_a_status_inside_a_stream_becomes_the_same_typed_error():
    assert type(gw.translate_status("gone", status=410, reason="Expired")) is gw.Gone
    assert type(gw.translate_status("boom", status=500)) is gw.Unavailable


@pytest.fixture
def gateway(simulated_cluster):
    simulated_cluster.cluster.ensure_namespace("work")
    return gw.Gateway(simulated_cluster.api_client)


def config_map(name="c1", **data):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "work"},
        "stringData": data,
    }


def test_create_or_get_and_delete_if_exists(gateway):
    created, was_new = gateway.create_or_get(config_map(a="1"))
    again, was_new_again = gateway.create_or_get(config_map(a="2"))
    assert (was_new, was_new_again) == (True, False)
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    assert gateway.delete_if_exists("Secret", "work", "c1", uid="someone-else") is False
    assert gateway.get_or_none("Secret", "work", "c1") is not None
    assert gateway.delete_if_exists("Secret", "work", "c1", uid=created["metadata"]["uid"]) is True
    assert gateway.delete_if_exists("Secret", "work", "c1") is False
    assert gateway.get_or_none("Secret", "work", "c1") is None


def test_replace_with_a_stale_resource_version_conflicts(gateway):
    stored = gateway.create(config_map())
    gateway.patch("Secret", "work", "c1", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(gw.Conflict):
        gateway.replace(stored)


def test_ensure_namespace(gateway):
    assert gateway.ensure_namespace("fresh") is True
    assert gateway.ensure_namespace("fresh") is False


def test_lease_kind(gateway):
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "work"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
    }
    gateway.create(lease)
    assert gateway.get("Lease", "work", "l")["spec"]["holderIdentity"] == "me"


def test_watch_yields_events_and_raises_gone_for_an_expired_version(simulated_cluster, gateway):
    version = gateway.list("Secret", "work")["metadata"]["resourceVersion"]
    gateway.create(config_map("w1"))
    events = []
    for type_, obj in gateway.watch("Secret", "work", resource_version=version, timeout_seconds=1):
        if type_ != "BOOKMARK":
            events.append((type_, obj["metadata"]["name"]))
    assert events == [("ADDED", "w1")]
    gateway.create(config_map("w2"))
    simulated_cluster.cluster.faults.expire_resource_versions()
    with pytest.raises(gw.Gone):
        list(gateway.watch("Secret", "work", resource_version=version, timeout_seconds=1))


def test_follow_pod_log_streams_lines_as_they_come(simulated_cluster, gateway):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "work"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]},
    }
    store = simulated_cluster.store
    store.create(by_api_version_kind("v1", "Pod"), pod, "work")
    store.append_log("work", "p", "main", "first")
    lines: list[str] = []

    def follow():
        for line in gateway.follow_pod_log("work", "p", "main", read_timeout=5):
            lines.append(line)
            if line == "second":
                return

    thread = threading.Thread(target=follow)
    thread.start()
    store.append_log("work", "p", "main", "second")
    thread.join(timeout=10)
    assert lines == ["first", "second"]


def test_an_unreachable_cluster_is_unavailable(simulated_cluster, gateway):
    simulated_cluster.cluster.stop()
    gateway.reset_connections()
    with pytest.raises(gw.Unavailable):
        gateway.list("Secret", "work")


def _api_errors(code: str) -> float:
    from coderadmin import metrics

    return metrics.KUBERNETES_API_ERRORS.labels(code=code)._value.get()


def test_failed_requests_are_counted_by_code_but_answers_like_not_found_are_not(simulated_cluster, gateway):
    before_500, before_404 = _api_errors("500"), _api_errors("404")
    simulated_cluster.cluster.faults.add(verb="get", path_regex="/secrets/c1", count=1)
    with pytest.raises(gw.Unavailable):
        gateway.get("Secret", "work", "c1")
    assert gateway.get_or_none("Secret", "work", "c1") is None
    assert _api_errors("500") == before_500 + 1
    assert _api_errors("404") == before_404
