"""A simulated cluster running a profile on the fast clock, for the node-side tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client, watch

from infrastructure.simulator.clock import Clock
from infrastructure.simulator.cluster import SimulatedCluster
from infrastructure.simulator.profiles import load_profile
from infrastructure.simulator.testing import ClusterHandle

ENV_NAMESPACE = "coderadmin-environments"


@contextmanager
def running_profile(name: str, directory: Path) -> Iterator[ClusterHandle]:
    cluster = SimulatedCluster(bookmark_interval=0.2)
    load_profile(cluster, name, Clock.fast())
    cluster.start()
    handle = ClusterHandle(
        cluster, cluster.write_kubeconfig(directory / f"kubeconfig-{name.replace('/', '_')}")
    )
    try:
        yield handle
    finally:
        handle.close()


def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for a condition the cluster reaches asynchronously; fail with the last state otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def events_for(api: client.CoreV1Api, namespace: str, name: str) -> list[client.CoreV1Event]:
    selector = f"involvedObject.name={name}"
    return api.list_namespaced_event(namespace, field_selector=selector).items


def reasons(api: client.CoreV1Api, namespace: str, name: str) -> set[str]:
    return {event.reason for event in events_for(api, namespace, name)}


def pod_manifest(name: str, image: str = "busybox:1.36", **spec: object) -> dict:
    body: dict = {"containers": [{"name": "main", "image": image}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def write_profile(directory: Path, extra: str = "", runtime: str = "containerd://1.7.22") -> str:
    """A one-node profile file with a default storage class; ``extra`` adds top-level YAML."""
    path = directory / "one-node.yaml"
    path.write_text(
        "namespaces: [{name: default}]\n"
        "nodes:\n"
        "  - name: n1\n"
        "    allocatable: {cpu: '2', memory: 4Gi, pods: '10'}\n"
        "    nodeInfo: {osImage: Ubuntu 22.04.4 LTS, kernelVersion: 5.15.0-1-generic,\n"
        f"               kubeletVersion: v1.31.0, containerRuntimeVersion: '{runtime}'}}\n"
        "objects:\n"
        "  - apiVersion: storage.k8s.io/v1\n"
        "    kind: StorageClass\n"
        "    metadata: {name: local, annotations: {storageclass.kubernetes.io/is-default-class: 'true'}}\n"
        "    provisioner: rancher.io/local-path\n"
        "    volumeBindingMode: WaitForFirstConsumer\n" + extra
    )
    return str(path)


def wait_for_pod(
    api: client.CoreV1Api, name: str, predicate: Callable[[client.V1Pod], object], namespace: str = "default"
):
    """The first snapshot of the pod that satisfies ``predicate`` (assert on one consistent state)."""
    found: list[client.V1Pod] = []

    def check() -> bool:
        pod = api.read_namespaced_pod(name, namespace)
        if predicate(pod):
            found.append(pod)
            return True
        return False

    eventually(check)
    return found[0]


def list_version(api: client.CoreV1Api, namespace: str = "default") -> str:
    """The resourceVersion to watch from so that no later revision is missed."""
    return api.list_namespaced_pod(namespace).metadata.resource_version


def watch_pod_until(
    api: client.CoreV1Api,
    name: str,
    predicate: Callable[[client.V1Pod], object],
    namespace: str = "default",
    since: str | None = None,
) -> list[client.V1Pod]:
    """Every revision of the pod after ``since`` (a ``list_version``), up to the first satisfying
    ``predicate``."""
    seen: list[client.V1Pod] = []
    stream = watch.Watch()
    for event in stream.stream(
        api.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=since,
        timeout_seconds=10,
    ):
        seen.append(event["object"])
        if predicate(event["object"]):
            stream.stop()
            return seen
    raise AssertionError(f"pod {name} never reached the expected state")
