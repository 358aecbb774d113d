"""The Images pages: who may open them, create/edit/enable/disable, write-only credentials, audit."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from coderadmin.models import AuditEntry
from environments.image_services import ImageData, image_create, image_update
from environments.models import Image
from tests.environments.factories import ImageFactory, ImageTagFactory
from tests.factories import auditor, member, site_admin, site_manager

pytestmark = pytest.mark.django_db

SECRET = "pa55-Word!-never-shown"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _local_cache(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture
def manager():
    return site_manager(username="max")


@pytest.fixture
def image():
    image = ImageFactory(repository="registry.example.com/team/dev", registry_username="bot")
    image.registry_password = SECRET
    image.save()
    ImageTagFactory(image=image, tag="1.0", is_default=True)
    ImageTagFactory(image=image, tag="2.0", is_default=False)
    return image


def form_data(**overrides) -> dict:
    data = {
        "repository": "registry.example.com/team/new",
        "description": "Python and Node",
        "tags": "3.12\n3.11",
        "default_tag": "3.12",
        "username": "coder",
        "run_as_uid": "1000",
        "command": "",
        "min_cpu_millicores": "500",
        "min_memory_mib": "1024",
        "min_disk_gib": "5",
        "registry_username": "",
        "registry_password": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def urls(image) -> list[tuple[str, str]]:
    return [
        ("get", reverse("images:list")),
        ("get", reverse("images:create")),
        ("get", reverse("images:edit", args=[image.pk])),
        ("post", reverse("images:create")),
        ("post", reverse("images:edit", args=[image.pk])),
        ("post", reverse("images:enable", args=[image.pk])),
        ("post", reverse("images:disable", args=[image.pk])),
    ]


def test_anonymous_visitors_go_to_login(image):
    for method, url in urls(image):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("make", [member, auditor])
def test_members_and_auditors_are_refused(image, make):
    client = client_for(make(username="someone"))
    for method, url in urls(image):
        assert getattr(client, method)(url, form_data()).status_code == 403, url
    assert Image.objects.count() == 1
    assert not AuditEntry.objects.filter(action__startswith="image.").exists()


@pytest.mark.parametrize("make", [site_manager, site_admin])
def test_managers_and_admins_see_the_images_page(image, make):
    body = client_for(make(username="boss")).get(reverse("images:list")).content.decode()
    assert "registry.example.com/team/dev" in body
    assert '<code>1.0</code> <span class="badge">default</span>' in body
    assert "<code>2.0</code>" in body
    assert "500m CPU" not in body  # factory minimums are 250m
    assert "250m CPU · 512 MiB · 1 GiB" in body
    assert SECRET not in body


@pytest.mark.parametrize("count", [1, 20])
def test_images_page_query_count_does_not_grow_with_images(manager, count, django_assert_num_queries):
    for _ in range(count):
        ImageTagFactory()
    client = client_for(manager)
    # session, user, role groups, count, images, their tags
    with django_assert_num_queries(6):
        assert client.get(reverse("images:list")).status_code == 200


def test_image_description_is_escaped(manager):
    ImageTagFactory(image__description='<img src=x onerror="alert(1)">')
    body = client_for(manager).get(reverse("images:list")).content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body


def test_create_an_image_with_tags_and_credentials(manager):
    response = client_for(manager).post(
        reverse("images:create"),
        form_data(registry_username="bot", registry_password=SECRET, command='["/usr/bin/code-server"]'),
    )
    assert response.status_code == 302 and response["Location"] == reverse("images:list")
    image = Image.objects.get(repository="registry.example.com/team/new")
    assert [(t.tag, t.is_default) for t in image.tags.order_by("tag")] == [("3.11", False), ("3.12", True)]
    assert (image.run_as_uid, image.command, image.min_cpu_millicores) == (
        1000,
        ["/usr/bin/code-server"],
        500,
    )
    assert image.registry_password == SECRET
    assert SECRET not in image.registry_password_encrypted
    entry = AuditEntry.objects.get(action="image.create")
    assert entry.actor == manager
    assert entry.after["registry_credentials"] is True
    assert SECRET not in str(entry.after) and SECRET not in str(entry.before)


def test_edit_page_never_shows_the_password(manager, image):
    body = client_for(manager).get(reverse("images:edit", args=[image.pk])).content.decode()
    assert SECRET not in body
    assert image.registry_password_encrypted not in body
    assert "Leave blank to keep them" in body
    password_input = re.search(r'<input[^>]*name="registry_password"[^>]*>', body).group(0)
    assert "value=" not in password_input


def test_blank_password_keeps_the_stored_one(manager, image):
    client_for(manager).post(
        reverse("images:edit", args=[image.pk]),
        form_data(
            repository=image.repository, tags="1.0 2.0 3.0", default_tag="3.0", registry_username="bot"
        ),
    )
    image.refresh_from_db()
    assert image.registry_password == SECRET
    assert [(t.tag, t.is_default) for t in image.tags.order_by("tag")] == [
        ("1.0", False),
        ("2.0", False),
        ("3.0", True),
    ]
    entry = AuditEntry.objects.get(action="image.update")
    assert entry.before["tags"] == ["1.0", "2.0"] and entry.after["default_tag"] == "3.0"


def test_a_new_password_replaces_the_stored_one(manager, image):
    client_for(manager).post(
        reverse("images:edit", args=[image.pk]),
        form_data(
            repository=image.repository,
            tags="1.0",
            default_tag="",
            registry_username="bot",
            registry_password="new-one",
        ),
    )
    image.refresh_from_db()
    assert image.registry_password == "new-one"


def test_credentials_can_be_removed(manager, image):
    client_for(manager).post(
        reverse("images:edit", args=[image.pk]),
        form_data(
            repository=image.repository,
            tags="1.0",
            default_tag="",
            registry_username="bot",
            clear_credentials="on",
        ),
    )
    image.refresh_from_db()
    assert not image.has_registry_credentials
    assert image.registry_username == "" and image.registry_password_encrypted == ""


def test_removed_tags_disappear(manager, image):
    client_for(manager).post(
        reverse("images:edit", args=[image.pk]),
        form_data(repository=image.repository, tags="2.0", default_tag="", registry_username="bot"),
    )
    assert [(t.tag, t.is_default) for t in image.tags.all()] == [("2.0", True)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"repository": "registry.example.com/team/dev"}, "already exists"),
        ({"repository": "registry.example.com/Team"}, "must be lowercase"),
        ({"tags": "ok bad:tag"}, "A digest looks like"),
        ({"default_tag": "9.9"}, "The default tag must be one of the tags."),
        ({"registry_username": "bot"}, "Give the registry password or token too."),
        ({"registry_password": "lonely"}, "Give the registry user name for this password."),
        ({"command": "[]"}, "JSON list of strings"),
        ({"min_memory_mib": "99999999"}, "Above the site&#x27;s maximum"),
    ],
)
def test_bad_image_input_is_a_form_error(manager, image, overrides, message):
    before = Image.objects.count()
    response = client_for(manager).post(reverse("images:create"), form_data(**overrides))
    body = response.content.decode()
    assert response.status_code == 400
    assert message in body
    assert 'role="alert"' in body
    assert Image.objects.count() == before
    assert "lonely" not in body
    assert not AuditEntry.objects.filter(action="image.create").exists()


def test_edit_unknown_image_is_404(manager):
    assert client_for(manager).get(reverse("images:edit", args=[424242])).status_code == 404


def test_disable_and_enable_are_audited(manager, image):
    client = client_for(manager)
    assert client.post(reverse("images:disable", args=[image.pk])).status_code == 302
    image.refresh_from_db()
    assert image.enabled is False
    assert client.post(reverse("images:enable", args=[image.pk])).status_code == 302
    image.refresh_from_db()
    assert image.enabled is True
    assert list(
        AuditEntry.objects.filter(action__startswith="image.").order_by("id").values_list("action", flat=True)
    ) == [
        "image.disable",
        "image.enable",
    ]


def test_enabling_an_enabled_image_records_nothing(manager, image):
    client_for(manager).post(reverse("images:enable", args=[image.pk]))
    assert not AuditEntry.objects.filter(action__startswith="image.").exists()


def test_enable_and_disable_refuse_get(manager, image):
    assert client_for(manager).get(reverse("images:disable", args=[image.pk])).status_code == 405


def test_images_posts_need_the_csrf_token(manager, image):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.post(reverse("images:disable", args=[image.pk])).status_code == 403
    assert client.post(reverse("images:create"), form_data()).status_code == 403
    image.refresh_from_db()
    assert image.enabled is True
    assert Image.objects.count() == 1


def test_services_validate_tags_themselves(manager):
    too_long = "sha256:" + "a" * 300
    with pytest.raises(ValidationError, match="too long"):
        image_create(actor=manager, data=ImageData(repository="registry.example.com/x", tags=(too_long,)))
    with pytest.raises(ValidationError, match="at least one tag"):
        image_create(actor=manager, data=ImageData(repository="registry.example.com/x", tags=()))
    assert not Image.objects.exists()


def test_update_service_keeps_one_default(manager, image):
    image_update(
        image,
        actor=manager,
        data=ImageData(repository=image.repository, tags=("2.0", "1.0"), registry_username="bot"),
    )
    assert [(t.tag, t.is_default) for t in image.tags.order_by("tag")] == [("1.0", False), ("2.0", True)]
