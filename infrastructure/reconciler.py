"""The drift reconciler: a periodic sweep that makes the cluster and the database agree again.

The watcher keeps them in step while it runs; the reconciler catches what it cannot see (it was down,
a task was lost with a worker, someone deleted objects by hand). One sweep:

1. lists our objects once per kind (pods, claims, secrets, network policies) by our label selector in
   the environments namespace: four API calls whatever the number of environments;
2. turns environments whose pod is gone into Error ("pod disappeared"), or rebuilds them when the
   ``RECONCILE_POD_MISSING_ACTION`` setting says ``rebuild``;
3. deletes objects carrying our labels whose environment no longer exists (audit entry per object);
4. turns environments stuck in Creating, Building or Turning off past the build timeout into Error;
5. re-enqueues the task of environments whose task was lost (``environments.recovery``).

Safe under concurrent runs. A sweep holds a cache lock (``cache.add``: atomic on Redis) for its
duration, so the beat's sweep and an operator's ``manage.py reconcile`` never overlap; a sweep that
finds the lock taken does nothing and says so. Behind that lock (which may expire, or be racy on the
file cache of a one-machine install) every fix first claims its row with a compare-and-swap on
``updated_at`` (``UPDATE ... WHERE updated_at = <value read>``) inside the fix's transaction: of two
sweeps that saw the same drift, one claims the row and fixes it, the other's claim matches no row.
This holds on PostgreSQL (the second UPDATE waits for the first transaction, then re-checks its
condition) and on SQLite (one writer at a time). A row changed by anyone after the sweep read it is
left for the next sweep. Deleting an orphan uses the object's uid as a precondition, so a newer
object of the same name is never touched and a second delete finds nothing. Each sweep stops fixing
when its time budget is spent; what is left waits for the next one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from coderadmin import metrics
from coderadmin.audit import audit_record
from environments import recovery, services
from environments.models import Environment, EnvironmentEvent
from environments.states import State, TransitionNotAllowed
from infrastructure import labels
from infrastructure.gateway import Gateway, GatewayError
from infrastructure.models import InfrastructureSettings

log = logging.getLogger(__name__)

# Listed once per sweep, in this order; orphans are deleted in it too (pods before what they mount).
KINDS: tuple[str, ...] = ("Pod", "Secret", "NetworkPolicy", "PersistentVolumeClaim")
DEFAULT_INTERVAL_SECONDS = 60
POD_MISSING_ERROR = "error"
POD_MISSING_REBUILD = "rebuild"
POD_DISAPPEARED = "The pod disappeared: it is no longer in the cluster (found by the reconciler)."
# A sweep stops fixing after this share of the interval, so sweeps never pile up behind each other.
BUDGET_SHARE = 0.8
LOCK_KEY = "coderadmin:reconciler:lock"
# The lock outlives a sweep's budget by this much; a crashed sweep's lock simply expires.
LOCK_SLACK_SECONDS = 30
# Evidence that a Building environment's pod existed: the cluster or the supervisor spoke about it.
POD_EVIDENCE_SOURCES = (EnvironmentEvent.Source.CLUSTER, EnvironmentEvent.Source.SUPERVISOR)


def interval_seconds() -> int:
    """The beat interval (``RECONCILE_INTERVAL_SECONDS``, default 60)."""
    return int(getattr(settings, "RECONCILE_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS))


def pod_missing_action() -> str:
    """``error`` (default) or ``rebuild``: what to do when an environment's pod disappeared."""
    action = getattr(settings, "RECONCILE_POD_MISSING_ACTION", POD_MISSING_ERROR)
    return POD_MISSING_REBUILD if action == POD_MISSING_REBUILD else POD_MISSING_ERROR


@dataclass
class ReconcileReport:
    """What one sweep saw and fixed; ``lines()`` is what the management command prints."""

    namespace: str
    started_at: datetime
    duration_seconds: float = 0.0
    listed: dict[str, int] = field(default_factory=dict)
    pods_missing: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    requeued: int = 0
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    truncated: bool = False
    busy: bool = False

    @property
    def fixes(self) -> int:
        return len(self.pods_missing) + len(self.orphans_deleted) + len(self.timed_out) + self.requeued

    def lines(self) -> list[str]:
        if self.busy:
            return ["Another sweep is running; this one did nothing."]
        listed = ", ".join(f"{count} {kind}" for kind, count in self.listed.items()) or "nothing (no list)"
        lines = [
            f"Reconciled namespace {self.namespace} in {self.duration_seconds:.2f} s; listed {listed}.",
            f"Pods missing: {len(self.pods_missing)}" + _names(self.pods_missing),
            f"Rebuilt: {len(self.rebuilt)}" + _names(self.rebuilt),
            f"Orphaned objects deleted: {len(self.orphans_deleted)}" + _names(self.orphans_deleted),
            f"Past the build timeout: {len(self.timed_out)}" + _names(self.timed_out),
            f"Lost tasks re-enqueued: {self.requeued}",
        ]
        if self.skipped:
            lines.append(f"Changed meanwhile, left for the next sweep: {', '.join(self.skipped)}")
        if self.truncated:
            lines.append("The time budget ran out; the next sweep continues.")
        lines.extend(f"Error: {error}" for error in self.errors)
        return lines


def _names(items: list[str]) -> str:
    return f" ({', '.join(items)})" if items else ""


def _label(env: dict[str, Any]) -> str:
    return f"{env['owner__username']}/{env['name']}"


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def spent(self, report: ReconcileReport) -> bool:
        if time.monotonic() >= self.deadline:
            report.truncated = True
        return report.truncated


def _claim(row: dict[str, Any]) -> bool:
    """Claim an environment row for one fix (call inside the fix's transaction); False when anyone
    changed it since this sweep read it."""
    return bool(
        Environment.objects.filter(pk=row["pk"], state=row["state"], updated_at=row["updated_at"]).update(
            updated_at=timezone.now()
        )
    )


_ROW_FIELDS = ("pk", "name", "owner__username", "state", "updated_at", "pod_name", "build_started_at")


def _fix_timeouts(now: datetime, timeout: int, report: ReconcileReport, budget: _Budget) -> None:
    """Creating, Building or Turning off for longer than the build timeout: Error with the reason."""
    cutoff = now - timedelta(seconds=timeout)
    stuck = Environment.objects.filter(
        Q(state=State.BUILDING, build_started_at__lt=cutoff)
        | Q(state=State.BUILDING, build_started_at__isnull=True, updated_at__lt=cutoff)
        | Q(state__in=[State.CREATING, State.TURNING_OFF], updated_at__lt=cutoff)
    ).values(*_ROW_FIELDS)
    minutes = max(1, round(timeout / 60))
    for row in stuck:
        if budget.spent(report):
            return
        label = State(row["state"]).label
        reason = f"Stuck in {label} for more than {minutes} minutes (found by the reconciler)."
        if _mark_error(row, reason, report):
            report.timed_out.append(_label(row))


def _mark_error(row: dict[str, Any], reason: str, report: ReconcileReport) -> bool:
    with transaction.atomic():
        if not _claim(row):
            report.skipped.append(_label(row))
            return False
        try:
            services.environment_mark_error(row["pk"], reason=reason)
        except TransitionNotAllowed:
            report.skipped.append(_label(row))
            return False
    return True


def _list(gateway: Gateway, namespace: str, report: ReconcileReport) -> dict[str, list[dict[str, Any]]]:
    listed: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        items = gateway.list(kind, namespace, label_selector=labels.MANAGED_SELECTOR).get("items") or []
        listed[kind] = items
        report.listed[kind] = len(items)
    return listed


def _environment_id(obj: dict[str, Any]) -> int | None:
    value = (obj.get("metadata", {}).get("labels") or {}).get(labels.LABEL_ENVIRONMENT_ID, "")
    return int(value) if value.isdigit() else None


def _fix_missing_pods(
    pods: Iterable[dict[str, Any]],
    namespace: str,
    listed_at: datetime,
    report: ReconcileReport,
    budget: _Budget,
) -> None:
    """Running (or Building with a pod already seen) environments whose pod was not listed.

    Only rows unchanged since before the list count: a build started after it may not have created
    its pod yet. A Building environment without any trace of its pod (no cluster event, no build-log
    line since the build started) has lost its task rather than its pod; step 5 re-enqueues it.
    """
    present = {pod["metadata"]["name"] for pod in pods}
    candidates = list(
        Environment.objects.filter(
            namespace=namespace, state__in=[State.RUNNING, State.BUILDING], updated_at__lt=listed_at
        )
        .exclude(pod_name__in=present)
        .exclude(pod_name="")
        .values(*_ROW_FIELDS)
    )
    building = [row["pk"] for row in candidates if row["state"] == State.BUILDING]
    seen = set()
    if building:
        seen = set(
            EnvironmentEvent.objects.filter(
                environment_id__in=building,
                source__in=POD_EVIDENCE_SOURCES,
                time__gte=F("environment__build_started_at"),
            ).values_list("environment_id", flat=True)
        )
    rebuild = pod_missing_action() == POD_MISSING_REBUILD
    for row in candidates:
        if row["state"] == State.BUILDING and row["pk"] not in seen:
            continue
        if budget.spent(report):
            return
        if not _mark_error(row, POD_DISAPPEARED, report):
            continue
        report.pods_missing.append(_label(row))
        if rebuild:
            _rebuild(row, report)


def _rebuild(row: dict[str, Any], report: ReconcileReport) -> None:
    try:
        services.environment_rebuild(Environment(pk=row["pk"]), actor=None)
    except (TransitionNotAllowed, ValidationError) as exc:
        report.errors.append(f"{_label(row)}: not rebuilt: {'; '.join(_messages(exc))}")
        return
    report.rebuilt.append(_label(row))


def _messages(exc: Exception) -> list[str]:
    messages = getattr(exc, "messages", None)
    return list(messages) if messages else [str(exc)]


def _delete_orphans(
    listed: dict[str, list[dict[str, Any]]],
    namespace: str,
    gateway: Gateway,
    report: ReconcileReport,
    budget: _Budget,
) -> None:
    """Objects labelled as ours whose environment row is gone (checked after the list was taken, so
    an object listed for a row that existed then is never mistaken for an orphan)."""
    ids = {env_id for items in listed.values() for obj in items if (env_id := _environment_id(obj))}
    if not ids:
        return
    existing = set(Environment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for kind in KINDS:
        for obj in listed[kind]:
            env_id = _environment_id(obj)
            meta = obj["metadata"]
            if env_id is None or env_id in existing or meta.get("deletionTimestamp"):
                continue
            if budget.spent(report):
                return
            name = meta["name"]
            try:
                deleted = gateway.delete_if_exists(kind, namespace, name, uid=meta.get("uid"))
            except GatewayError as exc:
                report.errors.append(f"{kind} {name}: not deleted: {exc.message}")
                continue
            if deleted:
                report.orphans_deleted.append(f"{kind} {name}")
                audit_record(
                    "reconciler.delete_orphan",
                    target=f"{kind} {namespace}/{name}",
                    message=f"Deleted: labelled for environment {env_id}, which no longer exists.",
                )


def reconcile(
    gateway: Gateway | None = None, now: datetime | None = None, budget_seconds: float | None = None
) -> ReconcileReport:
    """One sweep (see the module docstring). ``now`` moves the build-timeout clock (tests, replays);
    ``budget_seconds`` bounds the time spent fixing (default: 80 % of the interval)."""
    started = time.monotonic()
    now = now or timezone.now()
    infrastructure = InfrastructureSettings.load()
    report = ReconcileReport(namespace=infrastructure.environments_namespace, started_at=now)
    seconds = budget_seconds if budget_seconds is not None else BUDGET_SHARE * interval_seconds()
    token = uuid.uuid4().hex
    if not cache.add(LOCK_KEY, token, timeout=int(seconds) + LOCK_SLACK_SECONDS):
        report.busy = True
        return report
    try:
        _sweep(gateway, now, infrastructure, report, _Budget(seconds))
    finally:
        if cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)
    report.duration_seconds = time.monotonic() - started
    metrics.reconciler_sweep(
        {
            "pod_missing": len(report.pods_missing),
            "orphan_deleted": len(report.orphans_deleted),
            "timed_out": len(report.timed_out),
            "requeued": report.requeued,
        }
    )
    return report


def _sweep(
    gateway: Gateway | None,
    now: datetime,
    infrastructure: InfrastructureSettings,
    report: ReconcileReport,
    budget: _Budget,
) -> None:
    namespace = report.namespace
    _fix_timeouts(now, infrastructure.build_timeout_seconds, report, budget)
    listed_at = timezone.now()
    try:
        gateway = gateway or Gateway()
        listed = _list(gateway, namespace, report)
    except GatewayError as exc:
        report.errors.append(f"the cluster could not be listed: {exc.message}")
    else:
        _fix_missing_pods(listed["Pod"], namespace, listed_at, report, budget)
        _delete_orphans(listed, namespace, gateway, report, budget)
    if budget.spent(report):
        return
    try:
        report.requeued = recovery.requeue_stuck()
    except KombuOperationalError as exc:
        report.errors.append(f"lost tasks were not re-enqueued: the task broker is unreachable: {exc}")


@shared_task(name="infrastructure.reconcile", ignore_result=True)
def reconcile_task() -> None:
    """The beat entry: one sweep, logged."""
    report = reconcile()
    for line in report.lines():
        log.info("reconcile: %s", line)
