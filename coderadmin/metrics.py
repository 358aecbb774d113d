"""Prometheus metrics: the ``/metrics`` endpoint and the small API other modules count with.

Processes (gunicorn workers, Celery's prefork children, the watcher) write their counters and
histograms to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode); the
endpoint merges every file at scrape time. Gauges that describe state are not kept in processes at
all: ``EnvironmentCollector`` counts the database rows when Prometheus scrapes, so they are right
even after every process restarted.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import signals as celery_signals
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.db.models.signals import post_save
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.PROMETHEUS_MULTIPROC_DIR)
Path(settings.PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

from prometheus_client import (  # noqa: E402 (the directory must be known before any value exists)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

values.ValueClass = values.MultiProcessValue()

# Builds and starts take seconds to minutes (image pulls, CVM boot).
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, float("inf"))

BUILD_DURATION = Histogram(
    "coderadmin_build_duration_seconds",
    "Time one build task spent creating an environment's cluster objects.",
    buckets=_DURATION_BUCKETS,
)
TIME_TO_RUNNING = Histogram(
    "coderadmin_time_to_running_seconds",
    "Time from the start of a build (create, start, rebuild) to the environment running.",
    ["kind"],
    buckets=_DURATION_BUCKETS,
)
TASK_DURATION = Histogram(
    "coderadmin_task_duration_seconds",
    "Run time of Celery tasks.",
    ["task"],
    buckets=_DURATION_BUCKETS,
)
TASK_RETRIES = Counter("coderadmin_task_retries", "Celery task retries.", ["task"])
TASK_FAILURES = Counter("coderadmin_task_failures", "Celery tasks that ended with an exception.", ["task"])
KUBERNETES_API_ERRORS = Counter(
    "coderadmin_kubernetes_api_errors",
    "Failed Kubernetes API requests, by HTTP status (0: no answer: timeout or connection error).",
    ["code"],
)
WATCHER_RECONNECTS = Counter("coderadmin_watcher_reconnects", "Times the watcher re-established a watch.")
RECONCILER_FIXES = Counter(
    "coderadmin_reconciler_fixes", "Drift the reconciler fixed, by kind of fix.", ["fix"]
)
RECONCILER_SWEEPS = Counter("coderadmin_reconciler_sweeps", "Reconciler sweeps run.")

BUILD_TASK = "environments.build"


# --------------------------------------------------------------------------- the counting API


def kubernetes_api_error(status: int | None) -> None:
    """Count one failed API request; ``None`` when the server gave no answer."""
    KUBERNETES_API_ERRORS.labels(code=str(status or 0)).inc()


def watcher_reconnect() -> None:
    WATCHER_RECONNECTS.inc()


def reconciler_sweep(fixes: dict[str, int]) -> None:
    """One finished sweep and the number of fixes it made of each kind."""
    RECONCILER_SWEEPS.inc()
    for fix, count in fixes.items():
        if count:
            RECONCILER_FIXES.labels(fix=fix).inc(count)


def environment_kind(cvm: bool) -> str:
    return "cvm" if cvm else "standard"


def time_to_running(kind: str, seconds: float) -> None:
    TIME_TO_RUNNING.labels(kind=kind).observe(max(seconds, 0.0))


def _on_environment_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """An environment just became Running (the services save ``running_at`` exactly then): observe
    how long it took, once the transaction has committed."""
    if not update_fields or "running_at" not in update_fields:
        return
    if instance.running_at is None or instance.build_started_at is None:
        return
    elapsed: timedelta = instance.running_at - instance.build_started_at
    kind = environment_kind(instance.cvm)
    transaction.on_commit(lambda: time_to_running(kind, elapsed.total_seconds()))


post_save.connect(
    _on_environment_saved, sender="environments.Environment", dispatch_uid="coderadmin.metrics.ttr"
)


# --------------------------------------------------------------------------- Celery task hooks

_started: dict[str, float] = {}


@celery_signals.task_prerun.connect(dispatch_uid="coderadmin.metrics.prerun")
def _task_prerun(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@celery_signals.task_postrun.connect(dispatch_uid="coderadmin.metrics.postrun")
def _task_postrun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    began = _started.pop(task_id, None) if task_id else None
    if began is None or task is None:
        return
    elapsed = time.monotonic() - began
    TASK_DURATION.labels(task=task.name).observe(elapsed)
    if task.name == BUILD_TASK:
        BUILD_DURATION.observe(elapsed)


@celery_signals.task_retry.connect(dispatch_uid="coderadmin.metrics.retry")
def _task_retry(sender: Any = None, **kwargs: Any) -> None:
    TASK_RETRIES.labels(task=getattr(sender, "name", "unknown")).inc()


@celery_signals.task_failure.connect(dispatch_uid="coderadmin.metrics.failure")
def _task_failure(sender: Any = None, **kwargs: Any) -> None:
    TASK_FAILURES.labels(task=getattr(sender, "name", "unknown")).inc()


# --------------------------------------------------------------------------- scrape


class EnvironmentCollector(Collector):
    """Environments by state and kind, counted in the database at scrape time (one query)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from environments.models import Environment
        from environments.states import State

        family = GaugeMetricFamily(
            "coderadmin_environments", "Environments by state and kind.", labels=["state", "kind"]
        )
        counts = {
            (row["state"], environment_kind(row["cvm"])): row["n"]
            for row in Environment.objects.values("state", "cvm").annotate(n=Count("id")).order_by()
        }
        for state in State:
            for kind in ("standard", "cvm"):
                family.add_metric([state.value, kind], counts.get((state.value, kind), 0))
        yield family


def render(*, include_database: bool = True) -> bytes:
    """Everything the processes sharing the directory recorded, merged, plus (on the web
    endpoint) the database gauges."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    if include_database:
        registry.register(EnvironmentCollector())
    return generate_latest(registry)


def bearer_matches(authorization: str, expected: str) -> bool:
    """``Authorization: Bearer <expected>``, compared in constant time; never true without a token."""
    scheme, _, supplied = authorization.partition(" ")
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(supplied.strip().encode(), expected.encode())
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` for Prometheus: 404 unless METRICS_TOKEN is set, 401 without that bearer token."""
    expected = settings.METRICS_TOKEN
    if not expected:
        raise Http404("Metrics are off (METRICS_TOKEN is not set).")
    if not bearer_matches(request.headers.get("Authorization", ""), expected):
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


class MetricsEndpointMiddleware:
    """Answers ``/metrics`` before host validation and the HTTPS redirect, like the health
    endpoints: Prometheus scrapes each pod by IP over the cluster network."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") == "/metrics":
            try:
                return metrics_view(request)
            except Http404:
                return HttpResponse("Not found.\n", status=404, content_type="text/plain")
        return self.get_response(request)
