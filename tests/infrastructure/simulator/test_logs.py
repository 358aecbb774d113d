"""The pods/log subresource: stored text, container choice, tail, since, timestamps, follow."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import pod


@pytest.fixture
def core(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)
    api.create_namespaced_pod("default", pod("web"))
    simulated_cluster.store.append_log("default", "web", "main", "one\ntwo\nthree\n")
    return api


def test_reads_stored_log(core):
    assert core.read_namespaced_pod_log("web", "default") == "one\ntwo\nthree\n"


def test_tail_lines_and_timestamps(core):
    assert core.read_namespaced_pod_log("web", "default", tail_lines=2) == "two\nthree\n"
    stamped = core.read_namespaced_pod_log("web", "default", timestamps=True).splitlines()
    stamp, text = stamped[0].split(" ", 1)
    assert text == "one"
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None


def test_since_time_filters_older_lines(core, simulated_cluster, raw):
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    simulated_cluster.store.append_log("default", "web", "main", "four")
    path = "/api/v1/namespaces/default/pods/web/log?sinceTime="
    assert raw("GET", path + quote(cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))).body == b"four\n"
    future = (cutoff + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert raw("GET", path + quote(future)).body == b""
    assert raw("GET", path + "yesterday").status == 400
    assert core.read_namespaced_pod_log("web", "default", since_seconds=3600).startswith("one")


def test_container_must_be_named_when_several(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)
    api.create_namespaced_pod(
        "default", pod("two", containers=[{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}])
    )
    simulated_cluster.store.append_log("default", "two", "b", "from b")
    with pytest.raises(ApiException) as exc:
        api.read_namespaced_pod_log("two", "default")
    assert exc.value.status == 400
    assert "a container name must be specified for pod two, choose one of: [a b]" in exc.value.body
    assert api.read_namespaced_pod_log("two", "default", container="b") == "from b\n"
    with pytest.raises(ApiException) as exc:
        api.read_namespaced_pod_log("two", "default", container="c")
    assert exc.value.status == 400


def test_missing_pod_is_404(core):
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("none", "default")
    assert exc.value.status == 404


def test_follow_streams_new_lines_until_the_container_terminates(core, simulated_cluster):
    response = core.read_namespaced_pod_log("web", "default", follow=True, _preload_content=False)
    received = []
    reader = threading.Thread(target=lambda: received.extend(response.stream()))
    reader.start()
    simulated_cluster.store.append_log("default", "web", "main", "four")
    time.sleep(0.3)
    simulated_cluster.store.update_status(
        "pods",
        {
            "metadata": {"name": "web", "namespace": "default"},
            "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 0}}}]},
        },
    )
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert b"".join(received) == b"one\ntwo\nthree\nfour\n"
