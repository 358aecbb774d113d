"""create_site_admin (scripts, compose) and create_demo_users (bin/run)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from coderadmin.models import AuditEntry
from coderadmin.roles import Role, user_role

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "a-Fine-passphrase-77"


def test_create_site_admin_with_password(capsys):
    call_command(
        "create_site_admin", "--username", "boss", "--email", "b@example.com", "--password", GOOD_PASSWORD
    )
    user = User.objects.get(username="boss")
    assert user_role(user) is Role.SITE_ADMIN
    assert user.is_staff and user.is_superuser and user.check_password(GOOD_PASSWORD)
    assert "Created site admin boss" in capsys.readouterr().out
    assert AuditEntry.objects.filter(action="user.create", target_id=str(user.pk)).exists()


def test_create_site_admin_reads_password_from_env(monkeypatch):
    monkeypatch.setenv("FIRST_ADMIN_PW", GOOD_PASSWORD)
    call_command("create_site_admin", "--username", "boss", "--password-from-env", "FIRST_ADMIN_PW")
    assert User.objects.get(username="boss").check_password(GOOD_PASSWORD)


def test_create_site_admin_default_env_variable(monkeypatch):
    monkeypatch.setenv("SITE_ADMIN_PASSWORD", GOOD_PASSWORD)
    call_command("create_site_admin", "--username", "boss")
    assert User.objects.get(username="boss").check_password(GOOD_PASSWORD)


def test_create_site_admin_is_idempotent_and_keeps_the_password(capsys):
    call_command("create_site_admin", "--username", "boss", "--password", GOOD_PASSWORD)
    user = User.objects.get(username="boss")
    user.is_active = False
    user.save()
    call_command("create_site_admin", "--username", "boss", "--password", "other-Passphrase-88")
    user.refresh_from_db()
    assert user.is_active and user.check_password(GOOD_PASSWORD)
    assert User.objects.filter(username="boss").count() == 1
    assert "Kept existing site admin boss" in capsys.readouterr().out


def test_create_site_admin_refuses_missing_or_weak_password(monkeypatch):
    monkeypatch.delenv("SITE_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="SITE_ADMIN_PASSWORD"):
        call_command("create_site_admin", "--username", "boss")
    with pytest.raises(CommandError, match="too short"):
        call_command("create_site_admin", "--username", "boss", "--password", "abc")
    assert not User.objects.exists()


def test_demo_users_are_created_once_with_stored_passwords(settings, tmp_path, capsys):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    call_command("create_demo_users")
    creds = json.loads((tmp_path / "demo-credentials.json").read_text())
    first = capsys.readouterr().out
    assert f"admin    password: {creds['admin']}" in first
    assert User.objects.get(username="admin").check_password(creds["admin"])
    demo_member = User.objects.get(username="member")
    assert demo_member.check_password(creds["member"])
    assert user_role(demo_member) is Role.MEMBER
    assert user_role(User.objects.get(username="admin")) is Role.SITE_ADMIN
    call_command("create_demo_users")
    assert capsys.readouterr().out == first
    assert User.objects.count() == 2


def test_demo_users_are_refused_outside_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("create_demo_users")


def test_demo_images_are_registered_once_with_their_default_tags(settings, tmp_path, capsys):
    from environments.models import Image

    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    settings.CLUSTER_MODE = "simulated"
    call_command("create_demo_users")
    call_command("create_demo_images")
    call_command("create_demo_images")
    images = {image.repository: image for image in Image.objects.all()}
    assert set(images) == {"ghcr.io/coderadmin/example-systemd", "ghcr.io/coderadmin/example-plain"}
    systemd = images["ghcr.io/coderadmin/example-systemd"]
    assert systemd.tags.get(is_default=True).tag == "24.04"
    assert systemd.enabled and not systemd.deprecated


@pytest.mark.parametrize(("debug", "mode"), [(False, "simulated"), (True, "kubeconfig")])
def test_demo_images_are_refused_outside_local_simulated_runs(settings, debug, mode):
    settings.DEBUG = debug
    settings.CLUSTER_MODE = mode
    with pytest.raises(CommandError, match="simulated cluster"):
        call_command("create_demo_images")
