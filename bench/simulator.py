"""Benchmarks of the simulated API server: request rates, a selective list of 10,000 pods, watch fan-out.

Goals from the issue: the list's server time under 250 ms, watch events delivered within 50 ms.
"""

from __future__ import annotations

import http.client
import json
import ssl
import statistics
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

from infrastructure.simulator.cluster import SimulatedCluster

_REQUESTS = 300
_PODS = 10_000
_WATCHERS = 20
_WATCH_EVENTS = 30


def _api_client(cluster: SimulatedCluster) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.api_key = {"authorization": cluster.admin_token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def _connection(cluster: SimulatedCluster) -> http.client.HTTPSConnection:
    url = urlsplit(cluster.url)
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    return http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)


def _rate(label: str, count: int, call) -> dict[str, Any]:
    started = time.perf_counter()
    for n in range(count):
        call(n)
    elapsed = time.perf_counter() - started
    return {"benchmark": label, "value": round(count / elapsed), "unit": "req/s", "goal": ""}


def _requests(cluster: SimulatedCluster) -> list[dict[str, Any]]:
    core = client.CoreV1Api(_api_client(cluster))
    # The first call of each client method builds its validators; keep that out of the rates.
    core.create_namespaced_config_map("default", {"metadata": {"name": "target"}, "data": {"a": "b"}})
    core.read_namespaced_config_map("target", "default")
    rows = [
        _rate(
            "get configmap (official client)",
            _REQUESTS,
            lambda n: core.read_namespaced_config_map("target", "default"),
        ),
        _rate(
            "create configmap (official client)",
            _REQUESTS,
            lambda n: core.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}}),
        ),
    ]
    conn = _connection(cluster)
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}

    def raw_get(n: int) -> None:
        conn.request("GET", "/api/v1/namespaces/default/configmaps/target", headers=headers)
        conn.getresponse().read()

    rows.append(_rate("get configmap (raw HTTP keep-alive)", _REQUESTS * 2, raw_get))
    conn.close()
    return rows


def _list(cluster: SimulatedCluster) -> list[dict[str, Any]]:
    store = cluster.store
    store.create("namespaces", {"metadata": {"name": "bench"}})
    for n in range(_PODS):
        store.create(
            "pods",
            {
                "metadata": {"name": f"pod-{n:05d}", "labels": {"bucket": str(n % 100)}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
            },
            "bench",
        )
    path = "/api/v1/namespaces/bench/pods?labelSelector=bucket%3D7"
    conn = _connection(cluster)
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    server_times = []
    for _ in range(5):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        body = conn.getresponse().read()
        server_times.append(time.perf_counter() - started)
    conn.close()
    assert len(json.loads(body)["items"]) == _PODS // 100
    core = client.CoreV1Api(_api_client(cluster))
    client_times = []
    for _ in range(3):
        started = time.perf_counter()
        items = core.list_namespaced_pod("bench", label_selector="bucket=7").items
        client_times.append(time.perf_counter() - started)
    assert len(items) == _PODS // 100
    return [
        {
            "benchmark": f"list {_PODS} pods, selector matches 1%: server time (median of 5)",
            "value": round(statistics.median(server_times) * 1000, 1),
            "unit": "ms",
            "goal": "< 250 ms",
        },
        {
            "benchmark": f"list {_PODS} pods, selector matches 1%: official client total (median of 3)",
            "value": round(statistics.median(client_times) * 1000, 1),
            "unit": "ms",
            "goal": "",
        },
    ]


def _watch(cluster: SimulatedCluster) -> list[dict[str, Any]]:
    committed: dict[str, float] = {}
    unsubscribe = cluster.store.subscribe(
        lambda e: (
            committed.setdefault(e.obj["metadata"]["name"], time.perf_counter())
            if e.rt.plural == "configmaps" and e.type == "ADDED"
            else None
        )
    )
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(_WATCHERS + 1)
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}

    def watch() -> None:
        conn = _connection(cluster)
        conn.request(
            "GET", "/api/v1/namespaces/watched/configmaps?watch=1&timeoutSeconds=30", headers=headers
        )
        response = conn.getresponse()
        ready.wait()
        for _ in range(_WATCH_EVENTS):
            line = response.readline()
            received = time.perf_counter()
            name = json.loads(line)["object"]["metadata"]["name"]
            with lock:
                latencies.append(received - committed[name])
        conn.close()

    cluster.store.create("namespaces", {"metadata": {"name": "watched"}})
    threads = [threading.Thread(target=watch) for _ in range(_WATCHERS)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(0.2)
    core = client.CoreV1Api(_api_client(cluster))
    for n in range(_WATCH_EVENTS):
        core.create_namespaced_config_map("watched", {"metadata": {"name": f"w{n}"}})
        time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=30)
    unsubscribe()
    latencies.sort()
    label = f"watch fan-out to {_WATCHERS} watchers ({len(latencies)} deliveries)"
    return [
        {
            "benchmark": f"{label}: median latency",
            "value": round(statistics.median(latencies) * 1000, 2),
            "unit": "ms",
            "goal": "< 50 ms",
        },
        {
            "benchmark": f"{label}: max latency",
            "value": round(latencies[-1] * 1000, 2),
            "unit": "ms",
            "goal": "< 50 ms",
        },
    ]


def run() -> list[dict[str, Any]]:
    """All simulator benchmarks, one row per measured number."""
    with SimulatedCluster() as cluster:
        cluster.load_profile(None)
        return _requests(cluster) + _list(cluster) + _watch(cluster)
