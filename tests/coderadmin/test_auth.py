"""Sign-in, sign-out, password change and the failed-login rate limit."""

from __future__ import annotations

import pytest
from django.test import Client

from coderadmin.models import AuditEntry
from tests.factories import PASSWORD, member, site_admin

pytestmark = pytest.mark.django_db


def _login(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def alice(db):
    return member(username="alice")


def test_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert "Sign in" in response.content.decode()


def test_login_with_right_password_redirects_home_and_is_audited(client, alice):
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.actor, entry.target_id, entry.ip_address) == (alice, str(alice.pk), "10.0.0.1")


def test_wrong_password_gives_clear_message_and_is_audited(client, alice):
    response = _login(client, "alice", "nope")
    assert response.status_code == 200
    assert "do not match an active account" in response.content.decode()
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.actor is None
    assert entry.target_repr == "alice"
    assert entry.ip_address == "10.0.0.1"
    assert "nope" not in str(entry.after) + entry.message


def test_logout_is_post_only_and_audited(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert AuditEntry.objects.filter(action="auth.logout", actor=alice).exists()
    assert client.get("/").status_code == 302


def test_password_change_works_and_is_audited(client, alice):
    client.force_login(alice)
    new = "another-Fine-pass-31"
    response = client.post(
        "/accounts/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/done/"
    alice.refresh_from_db()
    assert alice.check_password(new)
    assert AuditEntry.objects.filter(action="auth.password_change", actor=alice).exists()
    assert client.get("/").status_code == 200  # still signed in


def test_repeated_failures_are_rate_limited_even_with_the_right_password(client, alice, settings):
    settings.LOGIN_RATE_LIMIT_ATTEMPTS = 3
    for _ in range(3):
        assert "do not match" in _login(client, "alice", "wrong").content.decode()
    response = _login(client, "alice", PASSWORD)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in body and "Try again in 5 minute(s)" in body
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action="auth.login_rate_limited").count() == 1


def test_rate_limit_is_per_username_and_address(client, alice, settings):
    settings.LOGIN_RATE_LIMIT_ATTEMPTS = 2
    member(username="bob")
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.0.0.1")
    assert "Too many" in _login(client, "alice", PASSWORD, ip="10.0.0.1").content.decode()
    assert _login(Client(), "alice", PASSWORD, ip="10.0.0.2").status_code == 302
    assert _login(Client(), "bob", PASSWORD, ip="10.0.0.1").status_code == 302
    assert "Too many" in _login(Client(), "ALICE", PASSWORD, ip="10.0.0.1").content.decode()


def test_rate_limit_ends_with_the_window(client, alice, settings, monkeypatch):
    settings.LOGIN_RATE_LIMIT_ATTEMPTS = 2
    settings.LOGIN_RATE_LIMIT_WINDOW = 60
    clock = [1_000_000.0]
    monkeypatch.setattr("coderadmin.auth.time.time", lambda: clock[0])
    for _ in range(2):
        _login(client, "alice", "wrong")
    assert "Try again in 1 minute(s)" in _login(client, "alice", PASSWORD).content.decode()
    clock[0] += 61
    assert _login(client, "alice", PASSWORD).status_code == 302


def test_success_resets_the_failure_count(client, alice, settings):
    settings.LOGIN_RATE_LIMIT_ATTEMPTS = 2
    _login(client, "alice", "wrong")
    assert _login(client, "alice", PASSWORD).status_code == 302
    client.logout()
    _login(client, "alice", "wrong")
    assert _login(client, "alice", PASSWORD).status_code == 302


def test_django_admin_login_shares_the_rate_limit(client, settings):
    settings.LOGIN_RATE_LIMIT_ATTEMPTS = 2
    site_admin(username="root", is_staff=True)
    for _ in range(2):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    response = client.post(
        "/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
    )
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_signed_in_user_visiting_login_goes_home(client, alice):
    client.force_login(alice)
    response = client.get("/accounts/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_sign_in_still_works_when_the_cache_is_down(client, alice, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    assert "do not match" in _login(client, "alice", "wrong").content.decode()
    assert _login(client, "alice", PASSWORD).status_code == 302
