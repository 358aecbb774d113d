"""Who may open what: every URL of the resolver x every kind of visitor, with the expected answer.

The table below is the product's access policy written down. The URL list comes from the resolver,
so a new endpoint without a row fails ``test_every_url_has_a_row``. Django admin routes follow one
rule instead (staff only), checked for every admin route, plus a few representative rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from environments.routing import websocket_urlpatterns
from infrastructure import gateway as gw
from tests.environments.terminal_support import communicator, running_environment
from tests.security.conftest import CSRF_SECRET, VISITORS, World, make_world

pytestmark = pytest.mark.django_db

LOGIN = "login"  # a redirect to the sign-in page, which comes back to the URL afterwards
ADMIN_LOGIN = "admin-login"  # a redirect to the Django admin's sign-in page
Outcome = int | str


def by_visitor(
    anonymous: Outcome,
    member: Outcome,
    other: Outcome,
    auditor: Outcome,
    manager: Outcome,
    admin: Outcome,
    staff: Outcome,
) -> dict[str, Outcome]:
    """One expected answer per visitor (the owner of the target environment is ``member``)."""
    return dict(zip(VISITORS, (anonymous, member, other, auditor, manager, admin, staff), strict=True))


def everyone(outcome: Outcome) -> dict[str, Outcome]:
    return dict.fromkeys(VISITORS, outcome)


def signed_in(outcome: Outcome) -> dict[str, Outcome]:
    """Anonymous visitors are sent to sign in; everybody else gets ``outcome``."""
    return by_visitor(LOGIN, outcome, outcome, outcome, outcome, outcome, outcome)


def managers(outcome: Outcome) -> dict[str, Outcome]:
    """The Manage section: sign in first; site managers and admins get ``outcome``, the rest 403."""
    return by_visitor(LOGIN, 403, 403, 403, outcome, outcome, 403)


def auditors(outcome: Outcome) -> dict[str, Outcome]:
    """Read-only oversight pages: site admins, site managers and auditors."""
    return by_visitor(LOGIN, 403, 403, outcome, outcome, outcome, 403)


def owner_or_managers(outcome: Outcome) -> dict[str, Outcome]:
    """Acting on the member's environment: its owner, managers and admins; auditors may only read (403);
    anyone else must not learn it exists (404)."""
    return by_visitor(LOGIN, outcome, 404, 403, outcome, outcome, 404)


def viewers(outcome: Outcome) -> dict[str, Outcome]:
    """Reading the member's environment: its owner and every role that sees all; others 404."""
    return by_visitor(LOGIN, outcome, 404, outcome, outcome, outcome, 404)


@dataclass(frozen=True)
class Row:
    """Expected answers for GET and POST to one route. ``target`` names the object the route's
    parameters point at (see ``url_kwargs``); ``data`` is the POST body."""

    get: dict[str, Outcome]
    post: dict[str, Outcome]
    target: str = ""
    data: dict[str, str] = field(default_factory=dict)


# The access policy, keyed by route. Status 286 is htmx's "stop polling" (a final state).
MATRIX: dict[str, list[Row]] = {
    "": [Row(get=signed_in(200), post=everyone(405))],
    "accounts/login/": [
        Row(
            get=by_visitor(200, 302, 302, 302, 302, 302, 302),
            post=by_visitor(200, 302, 302, 302, 302, 302, 302),
            data={"username": "nobody", "password": "wrong-password"},
        )
    ],
    "accounts/logout/": [Row(get=everyone(405), post=everyone(302))],
    "accounts/password/": [Row(get=signed_in(200), post=signed_in(200))],
    "accounts/password/done/": [Row(get=signed_in(200), post=signed_in(405))],
    "manage/": [Row(get=managers(200), post=everyone(405))],
    # The audit log and system status are read-only and open to auditors too.
    "manage/audit/": [Row(get=auditors(200), post=everyone(405))],
    "manage/audit/export.csv": [Row(get=auditors(200), post=everyone(405))],
    "manage/status/": [Row(get=auditors(200), post=everyone(405))],
    "manage/infrastructure/": [Row(get=managers(200), post=managers(405))],
    "manage/infrastructure/settings/": [Row(get=managers(405), post=managers(400))],
    "manage/infrastructure/cvm/": [Row(get=managers(405), post=managers(302))],
    "manage/infrastructure/cvm/enable/": [Row(get=managers(200), post=managers(302))],
    "manage/infrastructure/cvm/override/": [Row(get=managers(405), post=managers(302))],
    "manage/infrastructure/checks/": [Row(get=managers(405), post=managers(302))],
    "manage/infrastructure/checks/<int:pk>/": [Row(get=managers(200), post=managers(405), target="report")],
    "manage/infrastructure/namespace/": [Row(get=managers(405), post=managers(302))],
    "manage/infrastructure/guides/": [Row(get=managers(200), post=managers(405))],
    "manage/users/": [Row(get=managers(200), post=managers(400))],
    "manage/users/<int:pk>/": [
        Row(get=managers(200), post=managers(400), target="member-account"),
        # Managers may not manage accounts with a higher role.
        Row(
            get=by_visitor(LOGIN, 403, 403, 403, 403, 200, 403),
            post=by_visitor(LOGIN, 403, 403, 403, 403, 400, 403),
            target="admin-account",
        ),
    ],
    "manage/users/<int:pk>/password/": [
        Row(get=everyone(405), post=managers(400), target="member-account"),
        Row(
            get=everyone(405),
            post=by_visitor(LOGIN, 403, 403, 403, 403, 400, 403),
            target="admin-account",
        ),
    ],
    "manage/users/<int:pk>/deactivate/": [
        Row(get=everyone(405), post=managers(302), target="member-account"),
        Row(
            get=everyone(405),
            post=by_visitor(LOGIN, 403, 403, 403, 403, 302, 403),
            target="admin-account",
        ),
    ],
    "manage/users/<int:pk>/delete/": [
        Row(get=managers(200), post=managers(302), target="member-account"),
        Row(
            get=by_visitor(LOGIN, 403, 403, 403, 403, 200, 403),
            post=by_visitor(LOGIN, 403, 403, 403, 403, 302, 403),
            target="admin-account",
        ),
    ],
    "manage/users/<int:pk>/reactivate/": [
        Row(get=everyone(405), post=managers(302), target="member-account")
    ],
    "environments/": [Row(get=signed_in(200), post=everyone(405))],
    "environments/new/": [
        Row(
            get=by_visitor(LOGIN, 200, 200, 403, 200, 200, 403),
            post=by_visitor(LOGIN, 400, 400, 403, 400, 400, 403),
        )
    ],
    "environments/<int:pk>/": [Row(get=viewers(200), post=everyone(405), target="environment")],
    "environments/<int:pk>/live/": [Row(get=viewers(286), post=everyone(405), target="environment")],
    "environments/<int:pk>/delete/": [
        Row(get=owner_or_managers(200), post=owner_or_managers(302), target="environment")
    ],
    # The terminal page: the owner and site admins (whose session the owner is shown).
    "environments/<int:pk>/terminal/": [
        Row(get=by_visitor(LOGIN, 200, 404, 403, 403, 200, 404), post=everyone(405), target="environment")
    ],
    "environments/<int:pk>/rebuild/options/": [
        Row(get=owner_or_managers(200), post=owner_or_managers(400), target="environment")
    ],
    "environments/<int:pk>/<slug:action>/": [
        Row(get=everyone(405), post=owner_or_managers(302), target="environment-stop"),
        Row(get=everyone(405), post=signed_in(404), target="environment-unknown-action"),
    ],
    "images/": [Row(get=managers(200), post=everyone(405))],
    "images/new/": [Row(get=managers(200), post=managers(400))],
    "images/<int:pk>/": [Row(get=managers(200), post=managers(400), target="image")],
    "images/<int:pk>/enable/": [Row(get=everyone(405), post=managers(302), target="image")],
    "images/<int:pk>/disable/": [Row(get=everyone(405), post=managers(302), target="image")],
}

# Representative Django admin pages. Site roles grant nothing here: only staff get in, and a staff
# account without model permissions sees the index but no model.
ADMIN_VISITORS = (*VISITORS, "superuser")
ADMIN_PAGES: dict[str, tuple[str, Outcome]] = {
    "admin:index": ("", 200),
    "admin:environments_environment_changelist": ("", 403),
    "admin:environments_environment_change": ("environment", 403),
    "admin:environments_environmentevent_changelist": ("", 403),
    "admin:environments_image_changelist": ("", 403),
    "admin:coderadmin_user_changelist": ("", 403),
    "admin:coderadmin_auditentry_changelist": ("", 403),
    "admin:infrastructure_readinessreport_changelist": ("", 403),
    "admin:infrastructure_infrastructuresettingschange_changelist": ("", 403),
}
# Admin routes that are not behind the staff check, on purpose: signing in and out.
ADMIN_PUBLIC = {"admin:login", "admin:logout"}


# ------------------------------------------------------------------------------------- the resolver


@dataclass(frozen=True)
class Route:
    route: str
    name: str | None
    callback: Callable[..., HttpResponse]


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from _walk(pattern, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = pattern.name and (f"{namespace}:{pattern.name}" if namespace else pattern.name)
            yield Route(prefix + str(pattern.pattern), name, pattern.callback)


def all_routes() -> list[Route]:
    """Every URL pattern of the project, with admin and namespaced includes walked recursively."""
    return list(_walk(get_resolver()))


def product_routes() -> list[Route]:
    return [route for route in all_routes() if not route.route.startswith("admin/")]


def admin_routes() -> list[Route]:
    return [route for route in all_routes() if route.route.startswith("admin/")]


def url_kwargs(world: World, target: str) -> dict[str, Any]:
    """The route parameters of a named target object."""
    env = world.environment.pk
    return {
        "": {},
        "environment": {"pk": env},
        "environment-stop": {"pk": env, "action": "stop"},
        "environment-unknown-action": {"pk": env, "action": "escalate"},
        "image": {"pk": world.image.pk},
        "report": {"pk": world.report.pk},
        "member-account": {"pk": world.users["member"].pk},
        "admin-account": {"pk": world.users["admin"].pk},
    }[target]


def route_names() -> dict[str, str]:
    return {route.route: route.name for route in product_routes() if route.name}


def path_for(world: World, route: str, target: str) -> str:
    return reverse(route_names()[route], kwargs=url_kwargs(world, target))


def outcome(response: HttpResponse) -> Outcome:
    """The answer as the tables spell it: "login" for a redirect to sign in, else the status code."""
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith(reverse("login") + "?next="):
            return LOGIN
        if location.startswith(reverse("admin:login") + "?next="):
            return ADMIN_LOGIN
    return response.status_code


def request_as(world: World, visitor: str, method: str, path: str, data: dict[str, str]) -> HttpResponse:
    """One request by ``visitor`` with a valid CSRF token; the database changes it makes are undone."""
    with transaction.atomic():
        client = world.client(visitor)
        if method == "get":
            response = client.get(path)
        else:
            response = client.post(path, {"csrfmiddlewaretoken": CSRF_SECRET, **data})
        transaction.set_rollback(True)
    return response


def matrix_cases() -> Iterator[Any]:
    for route, rows in MATRIX.items():
        for index, row in enumerate(rows):
            for method in ("get", "post"):
                label = f"{method.upper()} /{route} {row.target or ''}".strip()
                yield pytest.param(route, index, method, id=label)


# ------------------------------------------------------------------------------------------ tests


def test_every_url_has_a_row():
    missing = sorted({route.route for route in product_routes()} - MATRIX.keys())
    assert not missing, (
        f"new endpoint without a row: {missing}. Add its expected answers for every visitor to MATRIX "
        "in tests/security/test_authorization_matrix.py."
    )


def test_every_row_is_a_url():
    stale = sorted(MATRIX.keys() - {route.route for route in product_routes()})
    assert not stale, f"rows for routes that no longer exist: {stale}"


def test_every_product_route_is_named():
    assert [route.route for route in product_routes() if not route.name] == []


@pytest.mark.parametrize(("route", "index", "method"), list(matrix_cases()))
def test_matrix(route, index, method, world, request):
    if route == "manage/infrastructure/namespace/" and method == "post":
        request.getfixturevalue("namespace_cluster")
    row = MATRIX[route][index]
    path = path_for(world, route, row.target)
    expected = row.get if method == "get" else row.post
    actual = {visitor: outcome(request_as(world, visitor, method, path, row.data)) for visitor in VISITORS}
    assert actual == expected, f"{method.upper()} {path}"


def _sample_path(route: Route) -> str:
    """A concrete path for an admin route (the staff check comes before any object lookup)."""
    if route.name == "admin:app_list":
        return reverse("admin:app_list", kwargs={"app_label": "environments"})
    if route.route.endswith("(?P<url>.*)$"):
        return "/admin/no-such-page/"
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route.route)


def test_every_admin_route_requires_staff(world):
    routes = [route for route in admin_routes() if route.name not in ADMIN_PUBLIC]
    assert len(routes) > 40  # every registered model brings its own routes
    wrong = {}
    for route in routes:
        path = _sample_path(route)
        for visitor in ("anonymous", "member", "auditor", "manager", "admin"):
            for method in ("get", "post"):
                answer = outcome(request_as(world, visitor, method, path, {}))
                if answer != ADMIN_LOGIN:
                    wrong[f"{method.upper()} {path} as {visitor}"] = answer
    assert wrong == {}


def test_the_public_admin_routes_are_the_sign_in_pages(world):
    assert {route.name for route in admin_routes()} >= ADMIN_PUBLIC
    for visitor in ("anonymous", "member"):
        assert outcome(request_as(world, visitor, "get", reverse("admin:login"), {})) == 200
        logout = request_as(world, visitor, "post", reverse("admin:logout"), {})
        assert (logout.status_code, logout["Location"]) == (302, reverse("admin:index"))


@pytest.mark.parametrize(("name", "target", "staff_answer"), [(n, *v) for n, v in ADMIN_PAGES.items()])
def test_representative_admin_pages(name, target, staff_answer, world):
    path = reverse(name, kwargs={"object_id": world.environment.pk} if target else {})
    actual = {visitor: outcome(request_as(world, visitor, "get", path, {})) for visitor in ADMIN_VISITORS}
    expected = {
        **dict.fromkeys(ADMIN_VISITORS, ADMIN_LOGIN),
        "staff": staff_answer,
        "superuser": 200,
    }
    assert actual == expected


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_everyone_without_signing_in(path, world):
    answers = {visitor: request_as(world, visitor, "get", path, {}) for visitor in VISITORS}
    assert {visitor: response.status_code for visitor, response in answers.items()} == everyone(200)
    assert all(response["Content-Type"] == "application/json" for response in answers.values())


def test_probes_do_not_leak_into_other_methods(world):
    assert request_as(world, "anonymous", "post", "/healthz", {}).status_code == 404


def _metrics(world: World, visitor: str, **headers: str) -> int:
    with transaction.atomic():
        client = world.client(visitor)
        status = client.get("/metrics", headers=headers).status_code
        transaction.set_rollback(True)
    return status


def test_metrics_are_off_without_a_token(world, settings):
    settings.METRICS_TOKEN = ""
    answers = {visitor: _metrics(world, visitor, Authorization="Bearer anything") for visitor in VISITORS}
    assert answers == everyone(404)


def test_metrics_need_the_bearer_token_whoever_is_signed_in(world, settings):
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    assert {visitor: _metrics(world, visitor) for visitor in VISITORS} == everyone(401)
    wrong = {"Authorization": "Bearer metrics-token-012345678"}
    assert {visitor: _metrics(world, visitor, **wrong) for visitor in VISITORS} == everyone(401)
    assert _metrics(world, "anonymous", Authorization="Basic metrics-token-0123456789") == 401
    assert _metrics(world, "anonymous", Authorization="Bearer metrics-token-0123456789") == 200


# The terminal WebSocket: "refused" at the handshake, "open" when the session starts, else the close
# code the consumer ends with (4403: not yours). Only the owner and site admins get a shell.
WEBSOCKET_ROUTES = {"ws/environments/<int:pk>/terminal/"}
REFUSED_AT_HANDSHAKE = "refused"
OPEN = "open"
TERMINAL = by_visitor(REFUSED_AT_HANDSHAKE, OPEN, 4403, 4403, 4403, OPEN, 4403)


def test_every_websocket_route_has_a_row():
    routes = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    assert routes == WEBSOCKET_ROUTES, "new WebSocket route without a row: add a test like the terminal's"


def _terminal_outcome(environment: Any, user: Any) -> Outcome:
    async def scenario() -> Outcome:
        comm = communicator(environment, user)
        accepted, _ = await comm.connect()
        if not accepted:
            return REFUSED_AT_HANDSHAKE
        message = json.loads(await comm.receive_from())
        if message["type"] == "info":
            await comm.disconnect()
            return OPEN
        closing = await comm.receive_output(timeout=5)
        return closing["code"]

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_terminal_websocket(simulated_cluster, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    gw.reset_api_client(simulated_cluster.api_client)
    try:
        world = make_world()
        environment = running_environment(simulated_cluster, world.users["member"])
        actual = {visitor: _terminal_outcome(environment, world.users.get(visitor)) for visitor in VISITORS}
    finally:
        gw.reset_api_client(None)
    assert actual == TERMINAL
