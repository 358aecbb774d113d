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

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import _stack, _support
from bench._support import ms, percentile, row

# A build not Running by then is reported as such (a lost state change), not waited for.
TIMEOUT_SECONDS = 60
# Members pressing Create at the same moment (each a database connection).
CREATE_THREADS = 10


def _build_rows(label: str, stack: _stack.Stack, ids: list[int], started: float, states: dict) -> list[dict]:
    """Time to all-Running, how many reached Running exactly once, and what stopped the rest.

    Read while the rows still exist. "Exactly once": one pod created and one "running" event.
    """
    from environments.models import Environment

    count = len(ids)
    probe = stack.probe
    pods = list(Environment.objects.filter(pk__in=ids).values_list("pod_name", flat=True))
    running = _stack.running_event_counts(ids)
    once = sum(1 for pk in ids if running[pk] == 1)
    twice = sum(1 for pk in ids if running[pk] > 1) + sum(1 for pod in pods if probe.pod_creates[pod] > 1)
    reached = [probe.env_running[pod] - started for pod in pods if pod in probe.env_running]
    unfinished = count - states.get("running", 0)
    if unfinished:
        _stack.report_unfinished(ids)
        everyone = f"not reached: {unfinished} not Running after {TIMEOUT_SECONDS} s"
    else:
        everyone = round(max(reached), 2)
    rows = [
        row(f"{label}: time to all-Running", everyone, "s"),
        row(
            f"{label}: median time to Running", round(statistics.median(reached), 2) if reached else "-", "s"
        ),
        row(f"{label}: reached Running exactly once", f"{once}/{count}", "", f"{count}/{count}"),
        row(f"{label}: reached Running more than once", twice, "", "0"),
    ]
    if unfinished:
        rows.append(row(f"{label}: final states", str(states), "", f"errors: {_stack.error_reasons(ids)}"))
    return rows


def _throughput(count: int) -> list[dict[str, Any]]:
    from django.db import close_old_connections

    label = f"{count} CVMs, 1 worker process"
    with _stack.provisioning_stack(workers=1) as stack:
        owners, image = _stack.prepare_cvm(max(1, count // 10), "seq")
        started = time.perf_counter()
        ids = [_stack.create_cvm(owners[n % len(owners)], image, f"env{n}").pk for n in range(count)]
        states = _stack.wait_final(ids, TIMEOUT_SECONDS)
        requests = stack.probe.requests_between(started, time.perf_counter())
        rows = _build_rows(label, stack, ids, started, states)
    _stack.forget_environments()
    close_old_connections()
    kinds = Counter(_stack.classify(method, path) for _, method, path in requests)
    rows.append(row(f"{label}: API requests per environment", round(len(requests) / count, 1), "req"))
    rows += [
        row(f"{label}: API {kind} requests per environment", round(kinds[kind] / count, 2), "req")
        for kind in ("write", "read", "watch", "log")
    ]
    return rows


# Threads per worker process for the burst: build tasks mostly wait on the API server, and the
# product's workers run CELERY_CONCURRENCY (default 4) tasks at once too.
WORKER_THREADS = 4


def _concurrent(count: int) -> list[dict[str, Any]]:
    from django.db import close_old_connections

    label = f"{count} concurrent CVM builds, 2 worker processes x {WORKER_THREADS} threads"
    with _stack.provisioning_stack(workers=2, threads=WORKER_THREADS) as stack:
        owners, image = _stack.prepare_cvm(max(1, count // 10), "par")
        close_old_connections()
        create_started: dict[str, float] = {}
        create_calls: list[float] = []

        def create(n: int) -> int:
            try:
                begun = time.perf_counter()
                env = _stack.create_cvm(owners[n % len(owners)], image, f"env{n}")
                create_started[env.pod_name] = begun
                create_calls.append(time.perf_counter() - begun)
                return env.pk
            finally:
                close_old_connections()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(count, CREATE_THREADS)) as pool:
            ids = list(pool.map(create, range(count)))
        states = _stack.wait_final(ids, TIMEOUT_SECONDS)
        rows = _build_rows(label, stack, ids, started, states)
        created = stack.probe.pod_created
        overhead = [created[pod] - begun for pod, begun in create_started.items() if pod in created]
    _stack.forget_environments()
    close_old_connections()
    name = f"{label}: dashboard overhead create → pod create"
    return [
        *rows,
        row(f"{name}, p50", ms(percentile(overhead, 0.5)), "ms"),
        row(f"{name}, p95", ms(percentile(overhead, 0.95)), "ms", "< 1000 ms"),
        row(
            f"{label}: of which the create call (service, commit, enqueue), p50",
            ms(percentile(create_calls, 0.5)),
            "ms",
        ),
        row(
            f"{label}: of which the create call (service, commit, enqueue), p95",
            ms(percentile(create_calls, 0.95)),
            "ms",
        ),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Both provisioning runs (5 and 4 environments with ``quick``)."""
    _support.setup_django()
    return _throughput(5 if quick else 100) + _concurrent(4 if quick else 50)
