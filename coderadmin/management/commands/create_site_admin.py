"""Create the first site admin without prompts (scripts, docker compose). Safe to run again."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from coderadmin.audit import audit_record

DEFAULT_PASSWORD_ENV = "SITE_ADMIN_PASSWORD"


def ensure_site_admin(username: str, email: str, password: str) -> tuple[Any, bool]:
    """Return (user, created). A new account gets ``password``; an existing one keeps its own but is
    made an active superuser and staff again, so the command always leaves a working site admin."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, email=email, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save()
            audit_record(
                "user.create",
                target=user,
                after={"username": username, "role": "Site admin"},
                message="Created by the create_site_admin command.",
            )
            return user, True
        if not (user.is_active and user.is_staff and user.is_superuser):
            user.is_active = user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_active", "is_staff", "is_superuser"])
            audit_record(
                "user.role_change",
                target=user,
                after={"role": "Site admin", "is_staff": True},
                message="Restored by the create_site_admin command.",
            )
        return user, False


class Command(BaseCommand):
    help = (
        "Create a site admin (superuser and staff). Without --password the password is read from the "
        f"environment variable named by --password-from-env (default {DEFAULT_PASSWORD_ENV}). "
        "An existing account keeps its password and is made an active site admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="Visible in the process list; prefer --password-from-env.")
        parser.add_argument("--password-from-env", metavar="VAR", default=DEFAULT_PASSWORD_ENV)

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get(options["password_from_env"], "")
        username = options["username"]
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            if not password:
                raise CommandError(f"Give --password or set {options['password_from_env']}.")
            try:
                validate_password(password, User(username=username, email=options["email"]))
            except ValidationError as exc:
                raise CommandError("Password refused: " + " ".join(exc.messages)) from exc
        user, created = ensure_site_admin(username, options["email"], password)
        verb = "Created" if created else "Kept existing"
        self.stdout.write(f"{verb} site admin {user.username} (handle {user.handle}).")
