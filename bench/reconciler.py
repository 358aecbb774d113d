"""One drift-reconciler sweep at 10,000 pods: the pods are put straight into the simulated cluster's
store (no kubelet, nothing to schedule) next to 10,000 environment rows that match them, so the
sweep lists everything and has nothing to fix — the steady-state cost paid every interval.

Goal: a sweep well inside its budget (80 % of ``RECONCILE_INTERVAL_SECONDS``, 48 s by default).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import _support
from bench._support import ms, row


def _seed_pods(cluster: Any, environments: list[tuple[int, str, str]], namespace: str) -> None:
    from infrastructure import labels

    cluster.store.create("namespaces", {"metadata": {"name": namespace}})
    for pk, pod_name, owner in environments:
        cluster.store.create(
            "pods",
            {
                "metadata": {
                    "name": pod_name,
                    "labels": labels.environment_labels(pk),
                    "annotations": {labels.ANNOTATION_OWNER: owner},
                },
                "spec": {"containers": [{"name": "main", "image": "ghcr.io/coderadmin/bench:1"}]},
            },
            namespace,
        )


def _measure(total: int, sweeps: int) -> list[dict[str, Any]]:
    from environments.models import Environment
    from infrastructure import gateway as gw
    from infrastructure.reconciler import reconcile
    from infrastructure.simulator.cluster import SimulatedCluster
    from infrastructure.simulator.testing import ClusterHandle

    Environment.objects.all().delete()
    _support.seed_environments(total, max(1, total // 10), prefix=f"r{total}x")
    environments = list(Environment.objects.values_list("pk", "pod_name", "owner__username"))
    namespace = Environment.objects.values_list("namespace", flat=True).first()
    cluster = SimulatedCluster()
    cluster.load_profile(None)
    seeded = time.perf_counter()
    _seed_pods(cluster, environments, namespace)
    seeded = time.perf_counter() - seeded
    cluster.start()
    handle = ClusterHandle(cluster, cluster.write_kubeconfig(_support.var_dir() / "reconciler-kubeconfig"))
    try:
        gateway = gw.Gateway(handle.api_client)
        durations = []
        for _ in range(sweeps):
            started = time.perf_counter()
            report = reconcile(gateway, budget_seconds=300)
            durations.append(time.perf_counter() - started)
            if report.busy or report.errors or report.fixes or report.listed.get("Pod") != total:
                raise RuntimeError(f"unexpected sweep: {report.lines()}")
    finally:
        handle.close()
        Environment.objects.all().delete()
    return [
        row(
            f"reconciler sweep at {total} pods, nothing to fix (median of {sweeps})",
            ms(statistics.median(durations)),
            "ms",
            "< 48000 ms (budget)",
        ),
        row(f"seeding {total} pods into the simulator store (setup, not the product)", ms(seeded), "ms"),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Sweeps at 10,000 pods (100 with ``quick``)."""
    _support.setup_django()
    return _measure(100, 1) if quick else _measure(10_000, 3)
