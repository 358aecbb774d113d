"""Cross-cutting models: the user (with a DNS-safe handle) and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from coderadmin.slugs import safe_slug

HANDLE_MAX_LENGTH = 32

handle_validator = RegexValidator(
    regex=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
    message="Use lowercase letters, digits and single hyphens; start and end with a letter or digit.",
)


def validate_no_double_hyphen(value: str) -> None:
    """Handles are joined into longer names, where ``--`` is reserved for hashed names (see slugs)."""
    if "--" in value:
        raise ValidationError("A handle cannot contain two hyphens in a row.", code="double_hyphen")


def derive_handle(username: str) -> str:
    """The default handle for a login name: the name itself when it is a valid handle, else a
    normalised form with a short hash of the original (single hyphen, so it stays a valid handle)."""
    slug = safe_slug(username, HANDLE_MAX_LENGTH)
    return slug.replace("---", "-")


class User(AbstractUser):
    """A person who signs in. ``handle`` names their objects in the cluster."""

    handle = models.CharField(
        max_length=HANDLE_MAX_LENGTH,
        unique=True,
        validators=[handle_validator, validate_no_double_hyphen],
        help_text="Short DNS-safe name used in the names of this user's cluster objects.",
    )

    def save(self, *args, **kwargs) -> None:
        if not self.handle:
            self.handle = derive_handle(self.username)
        super().save(*args, **kwargs)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        permissions = [
            ("manage_users", "Can manage every user and role"),
            ("manage_members", "Can manage member accounts"),
            ("manage_infrastructure", "Can change infrastructure settings"),
            ("view_all_environments", "Can view every user's environments"),
            ("view_audit_log", "Can read the audit log"),
        ]


class AuditEntryQuerySet(models.QuerySet):
    """Bulk changes are refused: the log is append-only from the application."""

    def update(self, **kwargs):
        raise PermissionError("Audit entries cannot be changed.")

    def delete(self):
        raise PermissionError("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    """One thing that happened: who did what to which object, when, from where, before and after.

    Written only through ``coderadmin.audit.audit_record``. Rows are never updated or deleted by
    the application, so the log can be trusted as a history.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The actor's username at the time, kept when the account is renamed or removed.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        who = self.actor_name or "system"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.target_repr}".strip()

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise PermissionError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries cannot be deleted.")
