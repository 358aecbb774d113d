"""Watcher latency: from the moment the simulated API server commits a pod as Ready to the moment the
environment's Running state is committed in the database (the watcher's list+watch, its assessment
and the service call). Environments are built one at a time so each latency is measured alone.
"""

from __future__ import annotations

from typing import Any

from bench import _stack, _support
from bench._support import ms, percentile, row

TIMEOUT_SECONDS = 20


def _measure(count: int) -> list[dict[str, Any]]:
    from django.db import close_old_connections

    with _stack.provisioning_stack(workers=1) as stack:
        (owner,), image = _stack.prepare_cvm(1, "watch")
        latencies: list[float] = []
        lost = 0
        probe = stack.probe
        for n in range(count):
            env = _stack.create_cvm(owner, image, f"env{n}")
            states = _stack.wait_final([env.pk], TIMEOUT_SECONDS)
            if states.get("running") != 1:
                _stack.report_unfinished([env.pk])
                lost += 1
                continue
            _stack.wait_for(lambda pod=env.pod_name: pod in probe.env_running, TIMEOUT_SECONDS)
            latencies.append(probe.env_running[env.pod_name] - probe.pod_ready[env.pod_name])
    _stack.forget_environments()
    close_old_connections()
    label = f"watcher: pod Ready → environment Running ({count} builds)"
    rows = [row(f"{label}, builds not Running within {TIMEOUT_SECONDS} s", lost, "", "0")]
    if not latencies:
        return rows
    return [
        *rows,
        row(f"{label}, p50", ms(percentile(latencies, 0.5)), "ms"),
        row(f"{label}, p95", ms(percentile(latencies, 0.95)), "ms"),
        row(f"{label}, max", ms(max(latencies)), "ms"),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Latencies over 30 sequential builds (3 with ``quick``)."""
    _support.setup_django()
    return _measure(3 if quick else 30)
