"""No open redirect: ``next`` after signing in or out never leads to another site."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests.factories import PASSWORD, member

pytestmark = pytest.mark.django_db

HOSTILE = [
    "//evil.example",
    "//evil.example/path",
    "https://evil.example",
    "http://evil.example/accounts/login/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " //evil.example",
    "\t//evil.example",
    "https://testserver.evil.example/",
    "https://evil.example@testserver/",
    "data:text/html,<script>alert(1)</script>",
]


def assert_stays_here(location: str) -> None:
    """A same-site path: no scheme, no host, and nothing a browser would read as one."""
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "evil.example" not in location and "javascript" not in location.lower(), location


@pytest.fixture
def user():
    return member(username="nina")


@pytest.mark.parametrize("target", HOSTILE)
def test_sign_in_ignores_a_foreign_next(target, user):
    response = Client().post("/accounts/login/", {"username": "nina", "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert_stays_here(response["Location"])
    assert response["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE)
def test_sign_in_ignores_a_foreign_next_in_the_query(target, user):
    response = Client().post(
        "/accounts/login/?" + f"next={target}", {"username": "nina", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE)
def test_a_signed_in_visit_to_the_login_page_ignores_a_foreign_next(target, user):
    client = Client()
    client.force_login(user)
    response = client.get("/accounts/login/", {"next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE)
def test_sign_out_ignores_a_foreign_next(target, user):
    client = Client()
    client.force_login(user)
    response = client.post("/accounts/logout/", {"next": target})
    assert response.status_code == 302
    assert_stays_here(response["Location"])
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("target", HOSTILE)
def test_the_admin_sign_in_ignores_a_foreign_next(target):
    member(username="op", is_staff=True, is_superuser=True)
    response = Client().post("/admin/login/", {"username": "op", "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert_stays_here(response["Location"])


def test_a_local_next_is_followed(user):
    """The control: the same request with a path of this site does go there."""
    response = Client().post(
        "/accounts/login/", {"username": "nina", "password": PASSWORD, "next": "/environments/new/"}
    )
    assert response["Location"] == "/environments/new/"
    client = Client()
    client.force_login(user)
    assert client.post("/accounts/logout/", {"next": "/accounts/login/?x=1"})["Location"] == (
        "/accounts/login/?x=1"
    )


def test_the_sign_in_page_does_not_echo_a_script_next(user):
    body = Client().get("/accounts/login/", {"next": 'javascript:alert(1)"><script>x()</script>'}).content
    assert b"<script>x()" not in body
