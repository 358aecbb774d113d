"""Stored XSS attempts render inert on every page that shows them.

Text from users and from the cluster (event messages, status reasons, check results, image
descriptions, usernames, audit messages) is stored with markup, bypassing form validation where a
form would refuse it, and every page that shows it must print it escaped: the markup's text is
visible, and the parsed page holds no element or event-handler attribute that came from it.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from coderadmin.models import AuditEntry
from environments.forms import EnvironmentCreateForm
from environments.models import Environment, EnvironmentEvent, validate_environment_name
from environments.selectors import enabled_images
from environments.states import State
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport
from tests.environments.factories import EnvironmentFactory
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOAD = SCRIPT + IMG
ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;")


class _Elements(HTMLParser):
    """Collects what a browser would act on: script elements, img elements, on* attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.images: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [f"{tag} {name}" for name, _ in attrs if name.lower().startswith("on")]
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def assert_inert(body: str, where: str) -> None:
    parser = _Elements()
    parser.feed(body)
    assert "alert(1)" not in "".join(parser.scripts), where
    assert "x" not in parser.images, where
    assert parser.handlers == [], where
    assert SCRIPT not in body and "<img src=x" not in body, where
    assert any(escaped in body for escaped in ESCAPED), f"{where} does not show the stored text at all"


@pytest.fixture
def poisoned(world: World) -> World:
    """The world with markup in every text field a page shows."""
    owner = world.users["member"]
    owner.first_name = PAYLOAD
    owner.email = f"{IMG}@example.com"
    owner.save()
    # Usernames and handles are validated by the forms; one stored by other means must still be inert.
    world.users["other"].username = f"o{PAYLOAD}"
    world.users["other"].handle = f"h{IMG}"
    world.users["other"].save()
    env = world.environment
    env.state = State.ERROR
    env.status_reason = f"ErrImagePull: {PAYLOAD}"
    env.node_name = f"node{IMG}"
    env.save()
    EnvironmentEvent.objects.create(environment=env, type="error", message=f"build log {PAYLOAD}")
    # Names are validated (see below); a name stored by other means must still be inert.
    EnvironmentFactory(owner=owner, image=world.image, name="second")
    Environment.objects.filter(name="second").update(name=IMG)
    world.image.description = f"Image {PAYLOAD}"
    world.image.save()
    InfrastructureSettingsChange.objects.create(
        changed_by=world.users["admin"], field="storage_class", old_value=SCRIPT, new_value=IMG
    )
    world.report.results = [
        {"check": "kernel", "subject": f"node{IMG}", "status": "fail", "reason": f"kernel {SCRIPT}"}
    ]
    world.report.cluster_version = f"v1.30{IMG}"
    world.report.save()
    AuditEntry.objects.create(
        actor_name=f"a{IMG}", action="environment.create", target_repr=PAYLOAD, message=PAYLOAD
    )
    return world


def _admin_client(world: World) -> Client:
    client = Client()
    client.force_login(world.users["superuser"])
    return client


def product_pages(world: World) -> list[tuple[str, str, dict[str, str]]]:
    """(who, path, headers) for every product page that shows one of the poisoned fields."""
    env = world.environment.pk
    named = Environment.objects.get(name=IMG).pk
    owner_filter = f"/environments/?owner={world.users['member'].username}"
    return [
        ("member", "/", {}),
        ("member", "/environments/", {}),
        ("admin", "/environments/", {}),
        ("admin", owner_filter, {}),
        ("admin", owner_filter, {"HX-Request": "true"}),
        ("member", f"/environments/{env}/", {}),
        ("auditor", f"/environments/{env}/", {}),
        ("member", f"/environments/{env}/live/", {"HX-Request": "true"}),
        ("member", f"/environments/{named}/", {}),
        ("member", f"/environments/{named}/delete/", {}),
        ("member", f"/environments/{named}/rebuild/options/", {}),
        ("member", f"/environments/{named}/terminal/", {}),
        ("admin", f"/environments/{named}/terminal/", {}),
        ("admin", "/images/", {}),
        ("admin", f"/images/{world.image.pk}/", {}),
        ("admin", "/manage/users/", {}),
        ("admin", f"/manage/users/{world.users['other'].pk}/", {}),
        ("admin", "/manage/infrastructure/", {}),
        ("admin", f"/manage/infrastructure/checks/{world.report.pk}/", {}),
        ("admin", f"/manage/infrastructure/checks/{world.report.pk}/", {"HX-Request": "true"}),
        ("auditor", "/manage/audit/", {}),
    ]


def test_product_pages_print_stored_markup_escaped(poisoned):
    for who, path, headers in product_pages(poisoned):
        client = poisoned.client(who)
        response = client.get(path, headers=headers)
        assert response.status_code in (200, 286), (who, path)
        assert_inert(response.content.decode(), f"{path} as {who} {headers}")


ADMIN_PAGES = [
    "admin:environments_environment_changelist",
    "admin:environments_environmentevent_changelist",
    "admin:coderadmin_user_changelist",
    "admin:coderadmin_auditentry_changelist",
    "admin:infrastructure_infrastructuresettingschange_changelist",
]


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_changelists_print_stored_markup_escaped(name, poisoned):
    response = _admin_client(poisoned).get(reverse(name))
    assert response.status_code == 200
    assert_inert(response.content.decode(), name)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("admin:environments_environment_change", "environment"),
        ("admin:environments_image_change", "image"),
        ("admin:coderadmin_user_change", "other"),
        ("admin:infrastructure_readinessreport_change", "report"),
    ],
)
def test_admin_change_pages_print_stored_markup_escaped(name, target, poisoned):
    pk = poisoned.users[target].pk if target == "other" else getattr(poisoned, target).pk
    response = _admin_client(poisoned).get(reverse(name, args=[pk]))
    assert response.status_code == 200
    body = response.content.decode()
    parser = _Elements()
    parser.feed(body)
    assert "alert(1)" not in "".join(parser.scripts)
    assert parser.handlers == []
    assert SCRIPT not in body and "<img src=x" not in body


@pytest.mark.parametrize("name", [SCRIPT, IMG, "web<b>", 'a"b', "a'b", "a&b", "a b", "WEB"])
def test_environment_names_cannot_carry_markup(name, world):
    with pytest.raises(ValidationError):
        validate_environment_name(name)
    form = EnvironmentCreateForm(
        {"name": name},
        owner=world.users["member"],
        infrastructure=InfrastructureSettings.load(),
        images=enabled_images(),
    )
    assert not form.is_valid()
    assert "name" in form.errors


def test_a_create_form_refused_for_its_name_echoes_it_escaped(world):
    client = world.client("member")
    response = client.post("/environments/new/", {"name": PAYLOAD, "csrfmiddlewaretoken": "s" * 32})
    assert response.status_code == 400
    assert_inert(response.content.decode(), "create form")


def test_the_live_partial_of_a_report_still_running_is_inert(poisoned):
    poisoned.report.state = ReadinessReport.State.RUNNING
    poisoned.report.progress_label = f"checking {PAYLOAD}"
    poisoned.report.save()
    response = poisoned.client("admin").get(
        f"/manage/infrastructure/checks/{poisoned.report.pk}/", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert_inert(response.content.decode(), "running report partial")


@pytest.mark.parametrize(
    ("visitor", "path", "params"),
    [
        ("admin", "/environments/", {"owner": PAYLOAD}),
        (
            "admin",
            "/manage/infrastructure/guides/",
            {"provider": "gke", "cluster_name": PAYLOAD, "location": IMG},
        ),
        (
            "admin",
            "/manage/infrastructure/guides/",
            {"provider": "eks", "cluster_name": PAYLOAD, "region": IMG},
        ),
        ("admin", "/manage/infrastructure/guides/", {"provider": "sysbox", "node_names": PAYLOAD}),
        ("auditor", "/manage/audit/", {"who": PAYLOAD, "action": IMG, "target": PAYLOAD}),
        ("anonymous", "/accounts/login/", {"next": PAYLOAD}),
    ],
)
def test_reflected_query_values_are_escaped(visitor, path, params, world):
    response = world.client(visitor).get(path, params)
    assert response.status_code == 200
    assert_inert(response.content.decode(), f"{path} {params}")
