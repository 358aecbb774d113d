"""Writes of the infrastructure page: settings (with history and audit), the CVM toggle, readiness runs.

Turning CVMs on needs a finished readiness report for the current backend and namespace; failed checks
refuse it unless the person explicitly overrides them, and the override is audit-logged with the checks
that failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from coderadmin.audit import audit_record
from coderadmin.roles import can_manage_infrastructure
from infrastructure.gateway import Gateway, GatewayError
from infrastructure.models import (
    CvmBackend,
    InfrastructureSettings,
    InfrastructureSettingsChange,
    ReadinessReport,
)
from infrastructure.readiness import Report, connection_result, run_checks

log = logging.getLogger(__name__)

# Every setting the settings form edits; the CVM toggle goes through cvm_enable / cvm_disable.
EDITABLE_FIELDS: tuple[str, ...] = (
    "default_to_cvm",
    "cvm_backend",
    "supervisor_image",
    "add_tun",
    "add_fuse",
    "inner_bridge_cidr",
    "environments_namespace",
    "storage_class",
    "cvm_node_selector",
    "cvm_tolerations",
    "default_cpu_millicores",
    "max_cpu_millicores",
    "default_memory_mib",
    "max_memory_mib",
    "default_disk_gib",
    "max_disk_gib",
    "default_gpu_count",
    "max_gpu_count",
    "max_environments_per_member",
    "build_timeout_seconds",
    "cvm_termination_grace_seconds",
)
# A report still queued or running after this long is taken as lost (its worker died).
STALE_RUN = timedelta(minutes=10)
PRIVILEGED_LABEL = "pod-security.kubernetes.io/enforce"


class CvmEnableRefused(Exception):
    """Turning CVMs on was refused; ``failures`` are the failed check rows (dicts) that say why."""

    def __init__(self, message: str, failures: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.failures = failures or []


def value_text(value: Any) -> str:
    """How a setting's value is shown in the history: JSON for selectors and tolerations."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _apply(
    changes: Mapping[str, Any],
    *,
    actor: Any,
    request: HttpRequest | None,
    action: str,
    message: str = "",
) -> tuple[InfrastructureSettings, list[InfrastructureSettingsChange]]:
    """Change the locked settings row, one history row per changed field, one audit entry."""
    settings = InfrastructureSettings.load()
    settings = InfrastructureSettings.objects.select_for_update().get(pk=settings.pk)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, value in changes.items():
        old = getattr(settings, name)
        if old != value:
            before[name], after[name] = old, value
            setattr(settings, name, value)
    if not after:
        return settings, []
    settings.full_clean()
    settings.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    settings.save()
    rows = InfrastructureSettingsChange.objects.bulk_create(
        InfrastructureSettingsChange(
            changed_by=settings.updated_by,
            field=name,
            old_value=value_text(before[name]),
            new_value=value_text(after[name]),
        )
        for name in after
    )
    audit_record(
        action, actor=actor, target=settings, request=request, before=before, after=after, message=message
    )
    return settings, rows


@transaction.atomic
def settings_update(
    settings: InfrastructureSettings,
    changes: Mapping[str, Any],
    actor: Any,
    request: HttpRequest | None = None,
) -> list[InfrastructureSettingsChange]:
    """Save the settings form: only changed fields are written and recorded (old → new, who, when).

    ``settings`` is the row the form was shown for; the change is applied to the stored row under a lock.
    Raises ``ValidationError`` when the result is invalid (nothing is saved then).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable through the settings form: {sorted(unknown)}")
    _, rows = _apply(
        changes,
        actor=actor,
        request=request,
        action="infrastructure.settings_update",
        message="Infrastructure settings changed; they apply to new builds and rebuilds.",
    )
    settings.refresh_from_db()
    return rows


def report_failures(report: ReadinessReport, settings: InfrastructureSettings) -> list[dict[str, Any]]:
    """The failed rows of a report, plus a row when it cannot vouch for the current settings."""
    if report.state == ReadinessReport.State.ERROR:
        return [{"check": "cluster", "status": "fail", "subject": "", "reason": report.error}]
    if not report.finished:
        return [
            {"check": "cluster", "status": "fail", "subject": "", "reason": "The checks have not finished."}
        ]
    failures = list(report.failures)
    if (report.cvm_backend, report.environments_namespace) != (
        settings.cvm_backend,
        settings.environments_namespace,
    ):
        failures.append(
            {
                "check": "cluster",
                "status": "fail",
                "subject": "",
                "reason": "The checks ran for another CVM backend or namespace; run them again.",
            }
        )
    return failures


@transaction.atomic
def cvm_enable(
    *,
    actor: Any,
    report: ReadinessReport | None,
    override: bool = False,
    request: HttpRequest | None = None,
) -> InfrastructureSettings:
    """Turn CVMs on after ``report``; failed checks refuse it unless ``override`` (audit-logged)."""
    settings = InfrastructureSettings.load()
    if settings.cvm_enabled:
        return settings
    if report is None:
        raise CvmEnableRefused("Run the readiness checks before turning CVMs on.")
    failures = report_failures(report, settings)
    if failures and not override:
        raise CvmEnableRefused(
            f"{len(failures)} readiness check(s) failed; fix them, or tick the override to turn CVMs "
            "on anyway.",
            failures,
        )
    if failures:
        audit_record(
            "infrastructure.cvm_enable_override",
            actor=actor,
            target=settings,
            request=request,
            after={"report": report.pk, "failing_checks": failures},
            message=f"CVMs turned on despite {len(failures)} failed readiness check(s).",
        )
    settings, _ = _apply(
        {"cvm_enabled": True},
        actor=actor,
        request=request,
        action="infrastructure.cvm_enable",
        message=f"Container-Based Virtual Machines turned on (readiness report {report.pk}).",
    )
    return settings


@transaction.atomic
def cvm_disable(*, actor: Any, request: HttpRequest | None = None) -> InfrastructureSettings:
    """Turn CVMs off: new environments are standard containers; running CVMs are left alone."""
    settings, _ = _apply(
        {"cvm_enabled": False},
        actor=actor,
        request=request,
        action="infrastructure.cvm_disable",
        message="Container-Based Virtual Machines turned off.",
    )
    return settings


def readiness_request(
    *, actor: Any, purpose: str = ReadinessReport.Purpose.MANUAL, request: HttpRequest | None = None
) -> ReadinessReport:
    """Queue a readiness run (the Celery task fills the report); an unfinished one of the same purpose
    asked for in the last minutes is returned instead of queuing a second."""
    from infrastructure.tasks import readiness_check

    recent = running_report()
    if recent is not None and recent.purpose == purpose:
        return recent
    with transaction.atomic():
        report = ReadinessReport.objects.create(
            requested_by=actor if getattr(actor, "is_authenticated", False) else None, purpose=purpose
        )
        audit_record(
            "infrastructure.readiness_run",
            actor=actor,
            target=report,
            request=request,
            message=f"Readiness checks requested ({report.get_purpose_display().lower()}).",
        )
        transaction.on_commit(lambda: readiness_check.delay(report.pk))
    return report


def readiness_run(report_id: int, gateway: Gateway | None = None) -> ReadinessReport:
    """Run the checks for a queued report and store the results (the Celery task's body).

    Running it again for a finished report changes nothing. A report asked for before enabling turns
    CVMs on when no check failed and its requester may still manage the infrastructure.
    """
    report = ReadinessReport.objects.get(pk=report_id)
    if report.finished:
        return report
    settings = InfrastructureSettings.load()
    report.state = ReadinessReport.State.RUNNING
    report.started_at = timezone.now()
    report.cvm_backend = settings.cvm_backend
    report.environments_namespace = settings.environments_namespace
    report.save(update_fields=["state", "started_at", "cvm_backend", "environments_namespace"])

    def progress(done: int, total: int, label: str) -> None:
        ReadinessReport.objects.filter(pk=report_id).update(
            progress_done=done, progress_total=total, progress_label=label[:100]
        )

    try:
        try:
            client = gateway or Gateway()
        except GatewayError as exc:
            result = Report(results=[connection_result(exc)])
        else:
            result = run_checks(client, settings, progress)
    except Exception as exc:
        log.exception("readiness report %s failed", report_id)
        report.refresh_from_db()
        report.state = ReadinessReport.State.ERROR
        report.error = f"The checks stopped with an internal error: {exc}"
        report.status = "fail"
        report.finished_at = timezone.now()
        report.save()
        return report
    report.refresh_from_db()
    report.results = [row.as_dict() for row in result.results]
    report.status = str(result.status)
    report.cluster_version = result.cluster_version[:100]
    report.cluster_cidrs = result.cluster_cidrs
    report.namespace_missing = result.namespace_missing
    report.state = ReadinessReport.State.DONE
    report.finished_at = timezone.now()
    report.save()
    requester = report.requested_by
    if (
        report.purpose == ReadinessReport.Purpose.ENABLE
        and not report_failures(report, InfrastructureSettings.load())
        and requester is not None
        and can_manage_infrastructure(requester)
    ):
        cvm_enable(actor=requester, report=report)
    return report


def latest_report() -> ReadinessReport | None:
    """The newest finished report: what the page and the toggle show."""
    return (
        ReadinessReport.objects.select_related("requested_by")
        .filter(state__in=[ReadinessReport.State.DONE, ReadinessReport.State.ERROR])
        .order_by("-created_at", "-id")
        .first()
    )


def running_report() -> ReadinessReport | None:
    """The newest report still queued or running, unless it is so old its worker must have died."""
    return (
        ReadinessReport.objects.filter(
            state__in=[ReadinessReport.State.QUEUED, ReadinessReport.State.RUNNING],
            created_at__gte=timezone.now() - STALE_RUN,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def namespace_create(
    *, actor: Any, request: HttpRequest | None = None, gateway: Gateway | None = None
) -> bool:
    """Create the environments namespace (True) or find it exists (False); audit-logged when created.

    For the supervising-container backend it is labelled for the privileged Pod Security level: it holds
    only CVM pods, whose supervising containers are privileged.
    """
    settings = InfrastructureSettings.load()
    name = settings.environments_namespace
    metadata: dict[str, Any] = {"name": name}
    if settings.cvm_backend == CvmBackend.SUPERVISOR:
        metadata["labels"] = {PRIVILEGED_LABEL: "privileged"}
    client = gateway or Gateway()
    _, created = client.create_or_get({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    if created:
        audit_record(
            "infrastructure.namespace_create",
            actor=actor,
            target=f"namespace {name}",
            request=request,
            after={"namespace": name, "labels": metadata.get("labels", {})},
            message=f"Created the environments namespace {name}.",
        )
    return created
