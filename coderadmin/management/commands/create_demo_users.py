"""Local runs only: a demo site admin and a demo member, with passwords kept under VAR_DIR."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from coderadmin.management.commands.create_site_admin import ensure_site_admin
from coderadmin.roles import Role

ADMIN_USERNAME = "admin"
MEMBER_USERNAME = "member"


class Command(BaseCommand):
    help = (
        "Create the demo accounts 'admin' (site admin) and 'member' (member) and print their sign-in "
        "details. Passwords are generated once and stored in VAR_DIR/demo-credentials.json. DEBUG only."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Demo accounts are for local runs (DEBUG=true) only.")
        path = settings.VAR_DIR / "demo-credentials.json"
        fresh = not path.exists()
        if fresh:
            creds = {name: secrets.token_urlsafe(12) for name in (ADMIN_USERNAME, MEMBER_USERNAME)}
            path.write_text(json.dumps(creds))
            path.chmod(0o600)
        else:
            creds = json.loads(path.read_text())
        admin, created = ensure_site_admin(ADMIN_USERNAME, "admin@example.com", creds[ADMIN_USERNAME])
        if fresh and not created:
            admin.set_password(creds[ADMIN_USERNAME])
            admin.save(update_fields=["password"])
        User = get_user_model()
        member = User.objects.filter(username=MEMBER_USERNAME).first()
        if member is None or fresh:
            member = member or User(username=MEMBER_USERNAME, email="member@example.com")
            member.is_active = True
            member.set_password(creds[MEMBER_USERNAME])
            member.save()
            member.groups.add(Group.objects.get(name=Role.MEMBER.value))
        for name in (ADMIN_USERNAME, MEMBER_USERNAME):
            self.stdout.write(f"  {name:<8} password: {creds[name]}")
