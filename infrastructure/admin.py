"""Django admin for operators: the infrastructure settings, their history and readiness reports.

The settings are saved through ``infrastructure.services.settings_update``, so an admin edit leaves the
same history rows and audit entry as the settings page. Turning CVMs on needs the readiness checks, so
that toggle stays on the Infrastructure page and is read-only here. History and reports are records:
read-only, never added or deleted by hand.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from coderadmin.admin import ReadOnlyAdmin
from infrastructure import services
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport


@admin.register(InfrastructureSettings)
class InfrastructureSettingsAdmin(admin.ModelAdmin):
    fields = ("cvm_enabled", *services.EDITABLE_FIELDS, "updated_at", "updated_by")
    readonly_fields = ("cvm_enabled", "updated_at", "updated_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """There is one settings row: go straight to it."""
        settings = InfrastructureSettings.load()
        return HttpResponseRedirect(
            reverse("admin:infrastructure_infrastructuresettings_change", args=[settings.pk])
        )

    def save_model(self, request: HttpRequest, obj: InfrastructureSettings, form: Any, change: bool) -> None:
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.EDITABLE_FIELDS
        }
        services.settings_update(obj, changes, actor=request.user, request=request)


@admin.register(InfrastructureSettingsChange)
class InfrastructureSettingsChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "changed_by", "field", "old_value", "new_value")
    list_filter = ("field",)
    search_fields = ("field", "old_value", "new_value", "changed_by__username")
    list_select_related = ("changed_by",)
    date_hierarchy = "changed_at"


@admin.register(ReadinessReport)
class ReadinessReportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "requested_by", "purpose", "state", "status", "cvm_backend", "finished_at")
    list_filter = ("state", "status", "purpose", "cvm_backend")
    list_select_related = ("requested_by",)
    date_hierarchy = "created_at"
