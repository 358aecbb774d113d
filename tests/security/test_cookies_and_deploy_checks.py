"""Production mode, as an operator configures it: ``check --deploy`` clean, cookies Secure and
HttpOnly, HSTS and the HTTPS redirect on. Runs in a fresh interpreter with only production variables."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "coderadmin.example.com"

# Runs inside the production-mode interpreter: the deploy checks, the settings, and a real sign-in
# over HTTPS against an in-memory database, reporting the cookies it got.
PROBE = f"""
import io, json
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment

out = io.StringIO()
call_command("check", deploy=True, fail_level="WARNING", stdout=out, stderr=out)
report = {{"check": out.getvalue()}}
report["settings"] = {{
    name: getattr(settings, name)
    for name in (
        "DEBUG", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_SECURE",
        "CSRF_COOKIE_HTTPONLY", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SAMESITE",
        "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF",
    )
}}
setup_test_environment()
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
call_command("migrate", verbosity=0)
from tests.factories import PASSWORD, member
member(username="pat")
client = Client(HTTP_HOST="{HOST}")
plain = client.get("/accounts/login/")
report["plain_http"] = [plain.status_code, plain["Location"]]
page = client.get("/accounts/login/", secure=True)
signed_in = client.post(
    "/accounts/login/", {{"username": "pat", "password": PASSWORD}}, secure=True
)
report["sign_in"] = signed_in.status_code
report["hsts"] = page.get("Strict-Transport-Security", "")
report["cookies"] = {{
    name: {{key: morsel[key] for key in ("secure", "httponly", "samesite")}}
    for name, morsel in client.cookies.items()
}}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("production")
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "coderadmin.settings",
        "CODERADMIN_VAR_DIR": str(tmp / "var"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": HOST,
        "KUBECONFIG": str(kubeconfig),
        "DATABASE_URL": "sqlite://:memory:",
        # Production serves collected, hashed static files; nothing is collected for this test.
        "STATIC_MANIFEST": "false",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_finds_no_issue(production):
    assert "System check identified no issues" in production["check"]
    assert "WARNINGS" not in production["check"]


def test_production_settings_are_strict(production):
    assert production["settings"] == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


def test_plain_http_is_sent_to_https(production):
    assert production["plain_http"] == [301, f"https://{HOST}/accounts/login/"]


def test_a_real_sign_in_gets_secure_http_only_cookies(production):
    assert production["sign_in"] == 302
    assert production["cookies"] == {
        "csrftoken": {"secure": True, "httponly": True, "samesite": "Lax"},
        "sessionid": {"secure": True, "httponly": True, "samesite": "Lax"},
    }
    assert production["hsts"].startswith("max-age=31536000")
