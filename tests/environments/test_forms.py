"""The create form and the image form on their own: limits, the CVM switch, parsing."""

from __future__ import annotations

import re

import pytest

from environments.forms import (
    CVM_DISABLED_HELP,
    DEPRECATED_ERROR,
    GPU_IN_CVM_ERROR,
    EnvironmentCreateForm,
    ImageForm,
)
from environments.selectors import enabled_images
from infrastructure.models import InfrastructureSettings
from tests.environments.factories import EnvironmentFactory, ImageFactory, ImageTagFactory
from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return member(username="mia")


@pytest.fixture
def tag():
    return ImageTagFactory(image__min_cpu_millicores=500, image__min_memory_mib=1024, image__min_disk_gib=5)


def infra(**values) -> InfrastructureSettings:
    settings = InfrastructureSettings.load()
    for key, value in values.items():
        setattr(settings, key, value)
    settings.save()
    return settings


def make_form(owner, data=None, **settings_values) -> EnvironmentCreateForm:
    return EnvironmentCreateForm(
        data, owner=owner, infrastructure=infra(**settings_values), images=enabled_images()
    )


def data_for(tag, **overrides) -> dict:
    data = {
        "name": "dev",
        "image_tag": str(tag.pk),
        "cpu_millicores": "500",
        "memory_mib": "1024",
        "disk_gib": "5",
        "gpu_count": "0",
    }
    data.update(overrides)
    return data


def test_valid_data_cleans_to_the_image_tag(owner, tag):
    form = make_form(owner, data_for(tag))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["image_tag"] == tag
    assert form.cleaned_data["image_tag"].image == tag.image
    assert form.cleaned_data["cvm"] is False


def test_initial_values_come_from_the_settings(owner, tag):
    form = make_form(owner, default_cpu_millicores=1500, default_memory_mib=3072, default_disk_gib=30)
    assert form.fields["cpu_millicores"].initial == 1500
    assert form.fields["memory_mib"].initial == 3072
    assert form.fields["disk_gib"].initial == 30
    assert form.fields["image_tag"].initial == str(tag.pk)


def test_maximums_come_from_the_settings(owner, tag):
    form = make_form(
        owner,
        data_for(tag, cpu_millicores="2001", memory_mib="4097", disk_gib="11"),
        max_cpu_millicores=2000,
        max_memory_mib=4096,
        max_disk_gib=10,
    )
    assert not form.is_valid()
    assert set(form.errors) == {"cpu_millicores", "memory_mib", "disk_gib"}
    assert form.fields["cpu_millicores"].widget.attrs["max"] == 2000


def test_minimums_come_from_the_chosen_image(owner, tag):
    form = make_form(owner, data_for(tag, cpu_millicores="499", memory_mib="1023", disk_gib="4"))
    assert not form.is_valid()
    assert form.errors["cpu_millicores"] == ["This image needs at least 500 millicores."]
    assert form.errors["memory_mib"] == ["This image needs at least 1024 MiB."]
    assert form.errors["disk_gib"] == ["This image needs at least 5 GiB."]


def test_cvm_is_refused_when_disabled_and_the_checkbox_is_disabled(owner, tag):
    form = make_form(owner, data_for(tag, cvm="on"), cvm_enabled=False)
    assert not form.is_valid()
    assert form.errors["cvm"] == [CVM_DISABLED_HELP]
    assert form.fields["cvm"].widget.attrs["disabled"] is True


@pytest.mark.parametrize(("default_to_cvm", "expected"), [(True, True), (False, False)])
def test_cvm_checkbox_follows_default_to_cvm(owner, tag, default_to_cvm, expected):
    form = make_form(owner, cvm_enabled=True, default_to_cvm=default_to_cvm)
    assert form.fields["cvm"].initial is expected
    assert "disabled" not in form.fields["cvm"].widget.attrs


def test_default_to_cvm_is_ignored_while_cvms_are_off(owner, tag):
    form = make_form(owner, cvm_enabled=False, default_to_cvm=True)
    assert form.fields["cvm"].initial is False


def test_gpus_refused_for_cvms(owner, tag):
    form = make_form(owner, data_for(tag, cvm="on", gpu_count="1"), cvm_enabled=True, max_gpu_count=2)
    assert not form.is_valid()
    assert form.errors["gpu_count"] == [GPU_IN_CVM_ERROR]


def test_gpus_allowed_for_standard_environments_up_to_the_maximum(owner, tag):
    assert make_form(owner, data_for(tag, gpu_count="2"), max_gpu_count=2).is_valid()
    assert not make_form(owner, data_for(tag, gpu_count="3"), max_gpu_count=2).is_valid()


def test_deprecated_images_are_listed_but_not_selectable(owner, tag):
    old = ImageTagFactory(image__repository="registry.example.com/old", image__deprecated=True, tag="2")
    form = make_form(owner, data_for(old))
    html = str(form["image_tag"])
    assert "registry.example.com/old (deprecated)" in html
    assert re.search(rf'<option value="{old.pk}"[^>]* disabled[ >]', html)
    assert not re.search(rf'<option value="{tag.pk}"[^>]* disabled[ >]', html)
    assert not form.is_valid()
    assert form.errors["image_tag"] == [DEPRECATED_ERROR]


def test_images_without_tags_are_not_offered(owner):
    ImageFactory(repository="registry.example.com/untagged")
    form = make_form(owner)
    assert "untagged" not in str(form["image_tag"])


def test_name_unique_per_owner_only(owner, tag):
    EnvironmentFactory(owner=owner, image=tag.image, name="dev")
    assert not make_form(owner, data_for(tag)).is_valid()
    assert make_form(member(username="other"), data_for(tag)).is_valid()


def test_limit_per_member(owner, tag):
    EnvironmentFactory(owner=owner, image=tag.image, name="one")
    form = make_form(owner, data_for(tag), max_environments_per_member=1)
    assert not form.is_valid()
    assert "the most this site allows" in form.non_field_errors()[0]


def test_name_is_stripped(owner, tag):
    form = make_form(owner, data_for(tag, name="  dev  "))
    assert form.is_valid()
    assert form.cleaned_data["name"] == "dev"


# --- Image form ---------------------------------------------------------------------------------


def image_data(**overrides) -> dict:
    data = {
        "repository": "registry.example.com/team/dev",
        "tags": "1.0, 2.0\nlatest 1.0",
        "default_tag": "2.0",
        "username": "coder",
        "min_cpu_millicores": "250",
        "min_memory_mib": "512",
        "min_disk_gib": "1",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_image_form_parses_tags_and_command():
    form = ImageForm(
        image_data(command='["/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080"]'), infrastructure=infra()
    )
    assert form.is_valid(), form.errors
    data = form.image_data()
    assert data.tags == ("1.0", "2.0", "latest")
    assert data.default_tag == "2.0"
    assert data.command == ["/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080"]
    assert data.enabled is True and data.deprecated is False


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"repository": "Registry/Bad Name"}, "repository"),
        ({"repository": "ubuntu:22.04"}, "repository"),
        ({"tags": " , "}, "tags"),
        ({"command": "not json"}, "command"),
        ({"command": '"just a string"'}, "command"),
        ({"command": "[1, 2]"}, "command"),
        ({"username": "0root"}, "username"),
        ({"run_as_uid": "0"}, "run_as_uid"),
        ({"min_cpu_millicores": "9000"}, "min_cpu_millicores"),
        ({"description": "x" * 2001}, "description"),
    ],
)
def test_image_form_errors(overrides, field):
    form = ImageForm(image_data(**overrides), infrastructure=infra())
    assert not form.is_valid()
    assert field in form.errors


def test_image_form_never_renders_the_password_back():
    image = ImageFactory(registry_username="bot")
    image.registry_password = "s3cret-token"
    image.save()
    ImageTagFactory(image=image)
    form = ImageForm(image_data(registry_password="typed-again"), infrastructure=infra(), image=image)
    html = form.as_div()
    assert "s3cret-token" not in html
    assert "typed-again" not in html
    assert "Leave blank to keep them" in html
    assert "clear_credentials" in form.fields


def test_clear_credentials_is_offered_only_when_some_are_stored():
    image = ImageFactory()
    ImageTagFactory(image=image)
    assert "clear_credentials" not in ImageForm(infrastructure=infra(), image=image).fields
    assert "clear_credentials" not in ImageForm(infrastructure=infra()).fields
