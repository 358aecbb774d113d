"""Django admin for operators: users (with handle; deleted through the lifecycle service) and a
read-only audit log."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import models
from django.http import HttpRequest
from django.utils.text import capfirst

from coderadmin.audit import audit_record
from coderadmin.lifecycle import user_delete
from coderadmin.models import AuditEntry, User
from coderadmin.roles import can_manage_user, forget_role
from environments.models import Environment


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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records (audit log, build logs, settings history, reports): viewable and filterable, never
    added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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

    # Deleting goes through lifecycle.user_delete, like Manage > Users: the environments (which PROTECT
    # their owner) are deleted through the services, cluster objects first, and the row follows.

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never yourself; otherwise whom the Manage pages let you manage (admins: anyone else)."""
        if obj is not None and (obj.pk == request.user.pk or not can_manage_user(request.user, obj)):
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set, list]:
        """The confirmation page lists the environments to be deleted instead of refusing on them."""
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owners = [obj.pk for obj in objs]
        environments = list(
            Environment.objects.filter(owner__in=owners).select_related("owner").order_by("pk")
        )
        to_delete.extend(
            f"Environment: {env.owner.username}/{env.name} (cluster objects first)" for env in environments
        )
        if environments:
            counts["environments"] = len(environments)
        # Not the admin's delete permission on environments: the services delete them.
        perms_needed.discard(Environment._meta.verbose_name)
        prefix = f"{capfirst(Environment._meta.verbose_name)}: "
        return to_delete, counts, perms_needed, [p for p in protected if not str(p).startswith(prefix)]

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for user in queryset:
            self._delete(request, user)

    def _delete(self, request: HttpRequest, user: Any) -> None:
        """has_delete_permission already refused yourself and anyone you may not manage (the whole
        bulk action is refused then), so user_delete's own checks pass here."""
        remaining = user_delete(actor=request.user, user=user, request=request)
        if remaining:
            self.message_user(
                request,
                f"{user.username} is deactivated; the account is removed once its {remaining} "
                "environment(s) are deleted.",
                messages.WARNING,
            )


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is append-only, from the admin too."""

    list_display = ("created_at", "actor_name", "action", "target_repr", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "target_repr", "target_id", "message")
    date_hierarchy = "created_at"
