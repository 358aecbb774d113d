"""Django admin for operators: users (with handle) and a read-only audit log."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import models
from django.http import HttpRequest

from coderadmin.audit import audit_record
from coderadmin.models import AuditEntry, User
from coderadmin.roles import forget_role


def _plain(value: Any) -> Any:
    """Model instances and collections of them (groups, permissions) as their names."""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, models.QuerySet | list | tuple | set):
        return sorted(str(item) for item in value)
    return value


def _differs(before: Any, after: Any) -> bool:
    """True for a real change (the admin's date widgets drop microseconds, which is not one)."""
    if isinstance(before, datetime.datetime) and isinstance(after, datetime.datetime):
        return before.replace(microsecond=0) != after.replace(microsecond=0)
    return before != after


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "handle", "email", "is_active", "is_staff", "is_superuser", "last_login")
    search_fields = ("username", "handle", "email")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Cluster", {"fields": ("handle",)}))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Operators' edits land in the audit log like the Manage pages' (password hashes excepted)."""
        super().save_model(request, obj, form, change)
        changed = [
            name
            for name in form.changed_data
            if "password" not in name
            and _differs(_plain(form.initial.get(name)), _plain(form.cleaned_data.get(name)))
        ]
        after = {name: _plain(form.cleaned_data.get(name)) for name in changed}
        before = {name: _plain(form.initial.get(name)) for name in changed} if change else {}
        action = "user.update" if change else "user.create"
        audit_record(action, target=obj, request=request, before=before, after=after, message="Django admin")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        forget_role(form.instance)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, from the admin too."""

    list_display = ("created_at", "actor_name", "action", "target_repr", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "target_repr", "target_id", "message")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
