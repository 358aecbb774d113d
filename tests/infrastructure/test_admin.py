"""The infrastructure admin: settings through the settings service, read-only history and reports."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from coderadmin.models import AuditEntry
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport

pytestmark = pytest.mark.django_db

SETTINGS_LIST = reverse("admin:infrastructure_infrastructuresettings_changelist")
HISTORY = reverse("admin:infrastructure_infrastructuresettingschange_changelist")
REPORTS = reverse("admin:infrastructure_readinessreport_changelist")


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("operator", "op@example.com", "pw-not-used-1234")
    client.force_login(user)
    return user


def settings_url() -> str:
    return reverse(
        "admin:infrastructure_infrastructuresettings_change", args=[InfrastructureSettings.load().pk]
    )


def rendered_form(client) -> dict:
    """The settings form's fields as the change page renders them (what a browser would post)."""
    form = client.get(settings_url()).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


def test_the_settings_list_goes_straight_to_the_one_row(client, operator):
    response = client.get(SETTINGS_LIST)

    assert response.status_code == 302
    assert response["Location"] == settings_url()


def test_saving_the_settings_records_history_and_an_audit_entry(client, operator):
    data = rendered_form(client)
    data["build_timeout_seconds"] = "1200"

    response = client.post(settings_url(), data)

    assert response.status_code == 302
    assert InfrastructureSettings.load().build_timeout_seconds == 1200
    change = InfrastructureSettingsChange.objects.get()
    assert (change.field, change.old_value, change.new_value, change.changed_by) == (
        "build_timeout_seconds",
        "900",
        "1200",
        operator,
    )
    entry = AuditEntry.objects.get(action="infrastructure.settings_update")
    assert entry.after == {"build_timeout_seconds": 1200}


def test_invalid_settings_are_form_errors_and_nothing_is_saved(client, operator):
    data = rendered_form(client)
    data["default_cpu_millicores"] = "9000"
    data["max_cpu_millicores"] = "8000"

    response = client.post(settings_url(), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert InfrastructureSettings.load().default_cpu_millicores == 2000
    assert not InfrastructureSettingsChange.objects.exists()


def test_the_cvm_toggle_is_read_only_here(client, operator):
    data = rendered_form(client)
    assert "cvm_enabled" not in data
    data["cvm_enabled"] = "on"

    client.post(settings_url(), data)

    assert InfrastructureSettings.load().cvm_enabled is False


def test_the_settings_row_cannot_be_added_or_deleted(client, operator):
    settings = InfrastructureSettings.load()

    assert client.get(reverse("admin:infrastructure_infrastructuresettings_add")).status_code == 403
    assert (
        client.get(
            reverse("admin:infrastructure_infrastructuresettings_delete", args=[settings.pk])
        ).status_code
        == 403
    )


def test_history_is_listed_read_only(client, operator, django_assert_max_num_queries):
    for value in range(20):
        InfrastructureSettingsChange.objects.create(
            changed_by=operator, field="max_gpu_count", old_value=str(value), new_value=str(value + 1)
        )
    change = InfrastructureSettingsChange.objects.first()

    with django_assert_max_num_queries(10):
        response = client.get(HISTORY)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 20
    assert client.get(reverse("admin:infrastructure_infrastructuresettingschange_add")).status_code == 403
    url = reverse("admin:infrastructure_infrastructuresettingschange_change", args=[change.pk])
    client.post(url, {"field": "tampered", "old_value": "", "new_value": ""})
    assert InfrastructureSettingsChange.objects.get(pk=change.pk).field == "max_gpu_count"
    delete = reverse("admin:infrastructure_infrastructuresettingschange_delete", args=[change.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_readiness_reports_are_listed_read_only(client, operator):
    report = ReadinessReport.objects.create(
        requested_by=operator, state=ReadinessReport.State.DONE, status="pass"
    )

    response = client.get(REPORTS)

    assert response.context["cl"].result_count == 1
    assert client.get(reverse("admin:infrastructure_readinessreport_add")).status_code == 403
    delete = reverse("admin:infrastructure_readinessreport_delete", args=[report.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
