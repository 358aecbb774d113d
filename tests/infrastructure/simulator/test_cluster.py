"""The in-process interface (store, subscribers, controllers), faults, restarts, state and concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.cluster import SimulatedCluster
from infrastructure.simulator.errors import APIError
from infrastructure.simulator.faults import KIND_429, KIND_DROP
from infrastructure.simulator.store import Store

from .conftest import pod


def test_python_api_round_trip_goes_through_defaulting_and_versions(simulated_cluster):
    store = simulated_cluster.store
    created = store.create("pods", pod("web"), "default")
    assert created["spec"]["restartPolicy"] == "Always"
    assert store.get("pods", "default", "web")["metadata"]["uid"] == created["metadata"]["uid"]
    created["spec"]["nodeName"] = "n1"
    updated = store.update("pods", created)
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    status = store.update_status("pods", {**updated, "status": {"phase": "Running"}})
    assert status["status"]["phase"] == "Running"
    assert (
        store.list("pods", "default", field_selector="status.phase=Running")[0]["metadata"]["name"] == "web"
    )
    assert (
        client.CoreV1Api(simulated_cluster.api_client).read_namespaced_pod("web", "default").spec.node_name
        == "n1"
    )
    result = store.delete("pods", "default", "web", grace_period_seconds=0)
    assert result.removed
    with pytest.raises(APIError) as exc:
        store.get("pods", "default", "web")
    assert exc.value.code == 404


def test_returned_objects_are_copies(simulated_cluster):
    store = simulated_cluster.store
    created = store.create("configmaps", {"metadata": {"name": "c"}}, "default")
    created["data"] = {"mutated": "yes"}
    store.get("configmaps", "default", "c")["data"] = {"again": "yes"}
    assert "data" not in store.get("configmaps", "default", "c")


def test_check_callbacks_run_before_anything_is_stored():
    store = Store()
    store.create("namespaces", {"metadata": {"name": "default"}})

    def refuse(new, old):
        raise APIError(403, "Forbidden", "no")

    with pytest.raises(APIError):
        store.create("configmaps", {"metadata": {"name": "c"}}, "default", check=refuse)
    assert store.list("configmaps") == []


def test_subscribers_see_every_change_in_order(simulated_cluster):
    seen = []
    unsubscribe = simulated_cluster.store.subscribe(
        lambda e: seen.append((e.type, e.obj["metadata"]["name"], e.rv))
    )
    api = client.CoreV1Api(simulated_cluster.api_client)
    api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    api.delete_namespaced_config_map("c", "default")
    unsubscribe()
    api.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "c"), ("DELETED", "c")]
    assert seen[0][2] < seen[1][2]


def test_python_watch_iterator(simulated_cluster):
    store = simulated_cluster.store
    watcher = store.watch("configmaps", "default", label_selector="app=x")
    store.create("configmaps", {"metadata": {"name": "a", "labels": {"app": "x"}}}, "default")
    store.create("configmaps", {"metadata": {"name": "b"}}, "default")
    events = iter(watcher)
    event_type, obj = next(events)
    assert (event_type, obj["metadata"]["name"]) == ("ADDED", "a")
    watcher.stop()
    assert list(events) == []


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


def test_controllers_start_and_stop_with_the_server():
    cluster = SimulatedCluster()
    early, late = Recorder(), Recorder()
    cluster.add_controller(early)
    assert early.calls == []
    with cluster:
        assert early.calls == ["start"]
        cluster.add_controller(late)
        assert late.calls == ["start"]
    assert early.calls == ["start", "stop"]
    assert late.calls == ["start", "stop"]


def test_injected_faults(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)
    faults = simulated_cluster.cluster.faults
    faults.add(verb="list", path_regex="configmaps", count=1)
    with pytest.raises(ApiException) as exc:
        api.list_namespaced_config_map("default")
    assert exc.value.status == 500
    faults.add(verb="create", kind=KIND_429, retry_after=7)
    with pytest.raises(ApiException) as exc:
        api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "7"
    faults.add(verb="get", kind=KIND_DROP, count=4)
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.read_namespace("default", _request_timeout=5)
    assert api.read_namespace("default").metadata.name == "default"


def test_restart_keeps_state_and_port(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)
    api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    port = simulated_cluster.cluster.port
    simulated_cluster.cluster.faults.restart()
    assert simulated_cluster.cluster.port == port
    assert api.read_namespaced_config_map("c", "default").metadata.name == "c"


def test_dump_and_load_round_trip(simulated_cluster):
    store = simulated_cluster.store
    owner = store.create("configmaps", {"metadata": {"name": "owner"}}, "default")
    store.create(
        "configmaps",
        {
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            }
        },
        "default",
    )
    store.append_log("default", "p", "c", "hello")
    restored = Store()
    restored.load(store.dump())
    assert restored.get("configmaps", "default", "owner")["metadata"]["uid"] == owner["metadata"]["uid"]
    assert restored.resource_version == store.resource_version
    assert restored.log_lines("default", "p", "c")[0][1] == "hello"
    restored.delete("configmaps", "default", "owner")
    assert restored.list("configmaps", "default") == []
    created = restored.create("configmaps", {"metadata": {"name": "new"}}, "default")
    assert int(created["metadata"]["resourceVersion"]) > store.resource_version


def test_concurrent_clients(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)

    def work(n: int) -> str:
        api.create_namespaced_config_map("default", {"metadata": {"name": f"c{n}"}})
        api.patch_namespaced_config_map(f"c{n}", "default", {"data": {"n": str(n)}})
        return api.read_namespaced_config_map(f"c{n}", "default").data["n"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(40)))
    assert results == [str(n) for n in range(40)]
    versions = [int(c.metadata.resource_version) for c in api.list_namespaced_config_map("default").items]
    assert len(set(versions)) == 40


def test_concurrent_optimistic_updates_conflict_instead_of_losing_writes(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client)
    api.create_namespaced_config_map("default", {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    lock = threading.Lock()
    conflicts = []

    def increment() -> None:
        while True:
            current = api.read_namespaced_config_map("counter", "default")
            current.data["n"] = str(int(current.data["n"]) + 1)
            try:
                api.replace_namespaced_config_map("counter", "default", current)
                return
            except ApiException as exc:
                assert exc.status == 409
                with lock:
                    conflicts.append(1)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: increment(), range(30)))
    assert api.read_namespaced_config_map("counter", "default").data["n"] == "30"


def test_plain_http_mode_and_kubeconfig(tmp_path):
    with SimulatedCluster(tls=False) as cluster:
        cluster.load_profile(None)
        assert cluster.url.startswith("http://")
        config = cluster.kubeconfig()
        assert "certificate-authority-data" not in config["clusters"][0]["cluster"]
        path = cluster.write_kubeconfig(tmp_path / "kc", token="abc")
        assert "token: abc" in path.read_text()
        assert oct(path.stat().st_mode)[-3:] == "600"
