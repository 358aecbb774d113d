"""Provisioning throughput: CVM environments created through the service layer and built to Running on
the simulated cluster (demo profile, fast clock) by real Celery worker processes and the watcher.

Two runs:
- 100 environments with one worker process: time to all-Running and Kubernetes API requests per
  environment (counted by the API server itself), split into writes, reads, watches and log follows.
- 50 concurrent creates with two worker processes: every environment reaches Running exactly once
  (one pod created, one "running" event), the dashboard's own overhead per build (from the create
  call to the API server committing the pod; goal p95 < 1 s) and time to all-Running.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import _stack, _support
from bench._support import ms, percentile, row

TIMEOUT_SECONDS = 300
# Members pressing Create at the same moment (each a database connection).
CREATE_THREADS = 10


def _throughput(count: int) -> list[dict[str, Any]]:
    from django.db import close_old_connections

    with _stack.provisioning_stack(workers=1) as stack:
        owners, image = _stack.prepare_cvm(max(1, count // 10), "seq")
        started = time.perf_counter()
        ids = []
        for n in range(count):
            ids.append(_stack.create_cvm(owners[n % len(owners)], image, f"env{n}").pk)
        states = _stack.wait_final(ids, TIMEOUT_SECONDS)
        ended = time.perf_counter()
        running = _stack.running_event_counts(ids)
        requests = stack.probe.requests_between(started, ended)
        errors = _stack.error_reasons(ids)
        _stack.forget_environments()
    close_old_connections()
    kinds = Counter(_stack.classify(method, path) for _, method, path in requests)
    label = f"{count} CVMs, 1 worker process"
    rows = [
        row(f"{label}: time to all-Running", round(ended - started, 2), "s"),
        row(
            f"{label}: reached Running",
            f"{sum(1 for i in ids if running[i])}/{count}",
            "",
            f"{count}/{count}",
        ),
        row(f"{label}: API requests per environment", round(len(requests) / count, 1), "req"),
    ]
    rows += [
        row(f"{label}: API {kind} requests per environment", round(kinds[kind] / count, 2), "req")
        for kind in ("write", "read", "watch", "log")
    ]
    if errors or states.get("running", 0) != count:
        rows.append(row(f"{label}: final states", str(states), "", f"all running; errors: {errors}"))
    return rows


def _concurrent(count: int) -> list[dict[str, Any]]:
    from django.db import close_old_connections

    with _stack.provisioning_stack(workers=2) as stack:
        owners, image = _stack.prepare_cvm(max(1, count // 10), "par")
        close_old_connections()
        create_started: dict[str, float] = {}

        def create(n: int) -> int:
            try:
                begun = time.perf_counter()
                env = _stack.create_cvm(owners[n % len(owners)], image, f"env{n}")
                create_started[env.pod_name] = begun
                return env.pk
            finally:
                close_old_connections()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(count, CREATE_THREADS)) as pool:
            ids = list(pool.map(create, range(count)))
        states = _stack.wait_final(ids, TIMEOUT_SECONDS)
        ended = time.perf_counter()
        running = _stack.running_event_counts(ids)
        probe = stack.probe
        overhead = [
            probe.pod_created[pod] - begun
            for pod, begun in create_started.items()
            if pod in probe.pod_created
        ]
        once = sum(1 for pk in ids if running[pk] == 1) if set(probe.pod_creates.values()) == {1} else 0
        errors = _stack.error_reasons(ids)
        _stack.forget_environments()
    close_old_connections()
    label = f"{count} concurrent CVM builds, 2 worker processes"
    rows = [
        row(f"{label}: reached Running exactly once", f"{once}/{count}", "", f"{count}/{count}"),
        row(f"{label}: time to all-Running", round(ended - started, 2), "s"),
        row(f"{label}: dashboard overhead create → pod create, p50", ms(percentile(overhead, 0.5)), "ms"),
        row(
            f"{label}: dashboard overhead create → pod create, p95",
            ms(percentile(overhead, 0.95)),
            "ms",
            "< 1000 ms",
        ),
    ]
    if errors or states.get("running", 0) != count:
        rows.append(row(f"{label}: final states", str(states), "", f"all running; errors: {errors}"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Both provisioning runs (5 and 4 environments with ``quick``)."""
    _support.setup_django()
    return _throughput(5 if quick else 100) + _concurrent(4 if quick else 50)
