"""Manage > Audit (the log, filtered, and its CSV export) and Manage > System status.

Both are read-only and open to site admins, site managers and auditors.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from datetime import time as day_time
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from coderadmin import health, heartbeat
from coderadmin.audit import audit_record
from coderadmin.models import AuditEntry
from coderadmin.roles import Role, role_required

logger = logging.getLogger(__name__)

ENTRIES_PER_PAGE = 50
EXPORT_CHUNK = 2000
# Seconds the status page waits for the Kubernetes API (connect, read).
CLUSTER_TIMEOUT = (2.0, 3.0)
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = (
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "ip_address",
    "message",
    "before",
    "after",
)

audit_readers = role_required(Role.SITE_ADMIN, Role.SITE_MANAGER, Role.AUDITOR)


class AuditFilterForm(forms.Form):
    who = forms.CharField(required=False, max_length=150, help_text="Username (part of it).")
    action = forms.CharField(
        required=False,
        max_length=64,
        help_text="An action such as environment.stop, or a prefix ending in a dot such as user.",
        widget=forms.TextInput(attrs={"list": "audit-actions"}),
    )
    target = forms.CharField(required=False, max_length=255, help_text="Name or id of the object.")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filter(self, entries: QuerySet) -> QuerySet:
        """Apply the valid filters (all of them; an invalid form filters nothing)."""
        if not self.is_valid():
            return entries.none()
        data = self.cleaned_data
        if data["who"]:
            entries = entries.filter(actor_name__icontains=data["who"])
        if data["action"]:
            action = data["action"]
            entries = (
                entries.filter(action__startswith=action)
                if action.endswith(".")
                else entries.filter(action=action)
            )
        if data["target"]:
            target = data["target"]
            entries = entries.filter(target_repr__icontains=target) | entries.filter(target_id=target)
        zone = timezone.get_current_timezone()
        if data["since"]:
            entries = entries.filter(created_at__gte=datetime.combine(data["since"], day_time.min, zone))
        if data["until"]:
            end = datetime.combine(data["until"] + timedelta(days=1), day_time.min, zone)
            entries = entries.filter(created_at__lt=end)
        return entries


def _form(request: HttpRequest) -> AuditFilterForm:
    return AuditFilterForm(request.GET or {})


@require_GET
@audit_readers
def audit_page(request: HttpRequest) -> HttpResponse:
    form = _form(request)
    entries = form.filter(AuditEntry.objects.all())
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    actions = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
    return render(
        request,
        "manage/audit.html",
        {"form": form, "page": page, "query": query.urlencode(), "actions": list(actions)},
        status=200 if form.is_valid() else 400,
    )


def safe_cell(value: Any) -> str:
    """Text a spreadsheet shows as text: a leading formula character gets a quote in front."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """csv.writer writes into this; each row comes back as a string to stream."""

    def write(self, value: str) -> str:
        return value


def csv_rows(entries: Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for entry in entries:
        row = (
            entry.created_at.isoformat(),
            entry.actor_name or "system",
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.target_repr,
            entry.ip_address or "",
            entry.message,
            json.dumps(entry.before, sort_keys=True) if entry.before else "",
            json.dumps(entry.after, sort_keys=True) if entry.after else "",
        )
        yield writer.writerow([safe_cell(cell) for cell in row])


@require_GET
@audit_readers
def audit_export(request: HttpRequest) -> HttpResponse:
    """The filtered log as CSV, streamed: rows are read in chunks, never all held in memory."""
    form = _form(request)
    if not form.is_valid():
        return render(request, "manage/audit.html", {"form": form, "page": None, "actions": []}, status=400)
    audit_record("audit.export", request=request, target="audit log", after={"filters": request.GET.dict()})
    entries = form.filter(AuditEntry.objects.all()).iterator(chunk_size=EXPORT_CHUNK)
    response = StreamingHttpResponse(csv_rows(entries), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


# --------------------------------------------------------------------------- system status


def _check(name: str, probe: Any) -> dict[str, Any]:
    began = time.monotonic()
    try:
        detail = probe() or ""
    except Exception as exc:  # each failure is shown on the page, not raised
        logger.warning("status check %s failed: %s", name, exc)
        return {"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    elapsed = (time.monotonic() - began) * 1000
    return {"name": name, "ok": True, "detail": f"{detail} ({elapsed:.0f} ms)".strip()}


def cluster_version() -> str:
    """The Kubernetes API's version, asked with a short timeout."""
    from infrastructure.gateway import Gateway

    version = Gateway(timeout=CLUSTER_TIMEOUT).version() or {}
    return str(version.get("gitVersion", ""))


def dependency_checks() -> list[dict[str, Any]]:
    checks = [_check(name, probe) for name, probe in health.CHECKS.items()]
    checks.append(_check("cluster", cluster_version))
    return checks


@require_GET
@audit_readers
def system_status(request: HttpRequest) -> HttpResponse:
    processes = [heartbeat.liveness(process) for process in heartbeat.PROCESSES]
    checks = dependency_checks()
    web_ready = all(check["ok"] for check in checks if check["name"] in health.CHECKS)
    return render(
        request,
        "manage/status.html",
        {"processes": processes, "checks": checks, "web_ready": web_ready},
    )
