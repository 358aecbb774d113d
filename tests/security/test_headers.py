"""The security headers hold on every page, and no page needs inline script or style to work.

The pages are the GET rows of the authorisation matrix (so a new endpoint is covered as soon as it
has its row), opened by a site admin, plus the htmx partials and the error pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import HttpResponse

from tests.security.conftest import World
from tests.security.test_authorization_matrix import MATRIX, path_for

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def assert_security_headers(response: HttpResponse, where: str) -> None:
    csp = response.get("Content-Security-Policy", "")
    directives = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives[name] = value.split()
    scripts = directives.get("script-src", directives.get("default-src", []))
    assert scripts == ["'self'"], where
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, where
    assert directives.get("object-src") == ["'none'"], where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("base-uri") == ["'self'"], where
    assert response.get("X-Content-Type-Options") == "nosniff", where
    assert response.get("X-Frame-Options") == "DENY", where
    assert response.get("Referrer-Policy") == "same-origin", where


class InlineCode(HTMLParser):
    """Finds what a strict CSP would block: inline scripts, style attributes and elements, event
    handler attributes and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            kind = (values.get("type") or "").lower()
            data_only = kind in ("application/json", "application/ld+json")
            self._script_without_src = "src" not in values and not data_only
            if self._script_without_src:
                self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            elif name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"javascript: URL in <{tag} {name}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._script_without_src and data.strip():
            self.found.append(f"inline script code: {data.strip()[:40]!r}")


def inline_code(body: str) -> list[str]:
    parser = InlineCode()
    parser.feed(body)
    return parser.found


def get_pages(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    """Every GET row of the matrix a site admin may open, and the htmx partials of the live pages."""
    for route, rows in MATRIX.items():
        for row in rows:
            if row.get["admin"] in (200, 286):
                yield path_for(world, route, row.target), {}
    env = world.environment.pk
    yield f"/environments/{env}/live/", HTMX
    yield "/environments/", HTMX
    yield f"/manage/infrastructure/checks/{world.report.pk}/", HTMX
    yield "/manage/infrastructure/guides/?provider=gke&cluster_name=dev&location=europe-west1", {}


def test_the_inline_code_finder_finds_what_it_should():
    body = (
        '<p style="color:red">x</p><script>alert(1)</script><a href="javascript:x()">y</a>'
        '<button onclick="x()">z</button><style>p{}</style><script src="/static/a.js"></script>'
        '<script type="application/json">{"a": 1}</script>'
    )
    assert inline_code(body) == [
        "style= on <p>",
        "inline <script>",
        "inline script code: 'alert(1)'",
        "javascript: URL in <a href>",
        "onclick= on <button>",
        "<style> element",
    ]


def test_every_page_has_the_headers_and_no_inline_code(world):
    client = world.client("admin")
    checked = 0
    problems: dict[str, Any] = {}
    for path, headers in get_pages(world):
        response = client.get(path, headers=headers)
        where = f"GET {path} {headers}"
        assert response.status_code in (200, 286), where
        assert_security_headers(response, where)
        if response["Content-Type"].startswith("text/html"):
            found = inline_code(response.content.decode())
            if found:
                problems[where] = found
        checked += 1
    assert problems == {}
    assert checked >= 25


@pytest.mark.parametrize(
    ("visitor", "path", "status"),
    [
        ("member", "/manage/", 403),
        ("member", "/no-such-page/", 404),
        ("other", "/environments/{env}/", 404),
        ("anonymous", "/accounts/login/", 200),
        ("member", "/accounts/password/", 200),
        ("member", "/environments/new/", 200),
    ],
)
def test_error_and_public_pages_have_the_headers_and_no_inline_code(visitor, path, status, world):
    response = world.client(visitor).get(path.format(env=world.environment.pk))
    assert response.status_code == status
    assert_security_headers(response, path)
    if response["Content-Type"].startswith("text/html"):
        assert inline_code(response.content.decode()) == []


def test_forms_refused_by_validation_have_no_inline_code(world):
    client = world.client("admin")
    for path in ("/environments/new/", "/images/new/", "/manage/users/", "/manage/infrastructure/settings/"):
        response = client.post(path, {"csrfmiddlewaretoken": "s" * 32})
        assert response.status_code == 400, path
        assert_security_headers(response, path)
        assert inline_code(response.content.decode()) == [], path


def test_the_csrf_failure_page_has_the_headers_and_no_inline_code(world):
    response = world.client("member", csrf=False).post("/environments/new/", {})
    assert response.status_code == 403
    assert_security_headers(response, "csrf failure")
    assert inline_code(response.content.decode()) == []
