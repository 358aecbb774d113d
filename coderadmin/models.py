"""Cross-cutting models: the user (with a DNS-safe handle) and the audit log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models

HANDLE_MAX_LENGTH = 32

handle_validator = RegexValidator(
    regex=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
    message="Use lowercase letters, digits and single hyphens; start and end with a letter or digit.",
)


class User(AbstractUser):
    """A person who signs in. ``handle`` names their objects in the cluster."""

    handle = models.CharField(
        max_length=HANDLE_MAX_LENGTH,
        unique=True,
        validators=[handle_validator],
        help_text="Short DNS-safe name used in the names of this user's cluster objects.",
    )

    def save(self, *args, **kwargs) -> None:
        if not self.handle:
            from coderadmin.slugs import safe_slug

            self.handle = safe_slug(self.username, HANDLE_MAX_LENGTH)
        super().save(*args, **kwargs)
