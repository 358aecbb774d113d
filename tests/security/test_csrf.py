"""Every state-changing endpoint refuses a POST without a CSRF token (403) and changes nothing.

The endpoints are the rows of the authorisation matrix whose POST is not refused as a method
(405) for everyone; the matrix itself has a row for every URL of the resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from coderadmin.models import AuditEntry
from environments.models import Environment, EnvironmentEvent, Image, ImageTag
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport
from tests.security.conftest import CSRF_SECRET, VISITORS, World
from tests.security.test_authorization_matrix import LOGIN, MATRIX, path_for

pytestmark = pytest.mark.django_db

MODELS = (
    get_user_model(),
    AuditEntry,
    Session,
    Environment,
    EnvironmentEvent,
    Image,
    ImageTag,
    InfrastructureSettings,
    InfrastructureSettingsChange,
    ReadinessReport,
)
REFUSED = {LOGIN, 403, 404, 405}

# Bodies that change something when the token is right, so the refusals below are the token's doing.
CHANGING: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("accounts/logout/", ""): lambda world: {},
    ("manage/users/", ""): lambda world: {
        "username": "newcomer",
        "email": "",
        "role": "Member",
        "handle": "",
        "password1": "Xq9-long-enough-pass",
        "password2": "Xq9-long-enough-pass",
    },
    ("manage/users/<int:pk>/deactivate/", "member-account"): lambda world: {},
    ("manage/users/<int:pk>/delete/", "member-account"): lambda world: {},
    ("manage/infrastructure/cvm/enable/", ""): lambda world: {},
    ("manage/infrastructure/checks/", ""): lambda world: {},
    ("environments/new/", ""): lambda world: {
        "name": "fresh",
        "image_tag": str(world.image.tags.get().pk),
        "cpu_millicores": "1000",
        "memory_mib": "1024",
        "disk_gib": "5",
        "gpu_count": "0",
    },
    ("environments/<int:pk>/delete/", "environment"): lambda world: {},
    ("environments/<int:pk>/<slug:action>/", "environment-stop"): lambda world: {},
    ("images/new/", ""): lambda world: {
        "repository": "registry.example.com/team/other",
        "tags": "2.0",
        "default_tag": "2.0",
        "username": "coder",
        "min_cpu_millicores": "250",
        "min_memory_mib": "512",
        "min_disk_gib": "1",
        "enabled": "on",
    },
    ("images/<int:pk>/disable/", "image"): lambda world: {},
}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the product writes to (sessions included: logout deletes one)."""
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in MODELS}


def post_cases() -> Iterator[Any]:
    for route, rows in MATRIX.items():
        for index, row in enumerate(rows):
            actors = [visitor for visitor in VISITORS if row.post[visitor] not in REFUSED]
            if actors:
                yield pytest.param(route, index, actors[-1], id=f"/{route} {row.target} as {actors[-1]}")


def test_every_route_that_accepts_posts_is_checked():
    checked = {(case.values[0], MATRIX[case.values[0]][case.values[1]].target) for case in post_cases()}
    assert CHANGING.keys() <= checked
    assert len(checked) >= 25


@pytest.mark.parametrize(("route", "index", "visitor"), list(post_cases()))
def test_post_without_a_token_is_refused_and_changes_nothing(route, index, visitor, world, request):
    if route == "manage/infrastructure/namespace/":
        request.getfixturevalue("namespace_cluster")
    row = MATRIX[route][index]
    path = path_for(world, route, row.target)
    changing = CHANGING.get((route, row.target))
    data = changing(world) if changing else row.data
    without_cookie, client = world.client(visitor, csrf=False), world.client(visitor)
    before = snapshot()

    no_cookie = without_cookie.post(path, data)
    no_field = client.post(path, data)
    wrong_field = client.post(path, {**data, "csrfmiddlewaretoken": "t" * 32})

    assert [no_cookie.status_code, no_field.status_code, wrong_field.status_code] == [403, 403, 403]
    assert "This form has expired" in no_field.content.decode()
    assert snapshot() == before

    with_token = client.post(path, {**data, "csrfmiddlewaretoken": CSRF_SECRET})
    assert with_token.status_code not in (403, 405)
    if changing:
        assert snapshot() != before, "the control request should have changed something"


def test_htmx_posts_need_the_token_in_the_header(world):
    path = path_for(world, "environments/<int:pk>/<slug:action>/", "environment-stop")
    client = world.client("member")
    refused = client.post(path, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    accepted = client.post(path, headers={"HX-Request": "true", "X-CSRFToken": CSRF_SECRET})
    assert accepted.status_code == 200
    world.environment.refresh_from_db()
    assert world.environment.state != "running"
