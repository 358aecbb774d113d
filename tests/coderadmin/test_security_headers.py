"""Security headers on normal pages, error pages and health answers."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import path

from coderadmin import urls as project_urls
from tests.factories import member

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom/", _boom), *project_urls.urlpatterns]


def _assert_headers(response):
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_headers_on_login_page(client):
    _assert_headers(client.get("/accounts/login/"))


def test_headers_on_signed_in_page(client):
    client.force_login(member(username="h"))
    _assert_headers(client.get("/"))


def test_headers_on_403_and_404(client):
    client.force_login(member(username="h"))
    response = client.get("/manage/")
    assert response.status_code == 403
    _assert_headers(response)
    response = client.get("/nowhere/")
    assert response.status_code == 404
    _assert_headers(response)


@override_settings(ROOT_URLCONF=__name__)
def test_headers_and_styled_page_on_500():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    _assert_headers(response)
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert "/static/css/app.css" in body


def test_csrf_failure_page_is_ours():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    _assert_headers(response)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_answers_carry_every_security_header(client, path):
    # Health answers return before Django's security middlewares run.
    _assert_headers(client.get(path))
