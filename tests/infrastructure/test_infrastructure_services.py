"""Services of the infrastructure page: settings history and audit, the CVM toggle's refusal and override,
readiness runs stored from the simulated cluster, namespace creation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from coderadmin.models import AuditEntry
from infrastructure import gateway as gw
from infrastructure import services
from infrastructure.models import (
    CvmBackend,
    InfrastructureSettings,
    InfrastructureSettingsChange,
    ReadinessReport,
)
from infrastructure.simulator.profiles import load_profile
from tests.factories import member, site_admin, site_manager

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return site_admin(username="ada")


@pytest.fixture
def cluster(simulated_cluster) -> Iterator:
    """The simulated cluster as the product's configured cluster."""
    gw.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gw.reset_api_client(None)


def _done_report(results: list[dict] | None = None, **fields) -> ReadinessReport:
    settings = InfrastructureSettings.load()
    values = {
        "state": ReadinessReport.State.DONE,
        "finished_at": timezone.now(),
        "results": results or [{"check": "version", "status": "pass", "reason": "ok", "subject": ""}],
        "cvm_backend": settings.cvm_backend,
        "environments_namespace": settings.environments_namespace,
    }
    values.update(fields)
    return ReadinessReport.objects.create(**values)


FAILED = [
    {"check": "nodes", "status": "fail", "reason": "Kernel 4.14 is older than 5.4", "subject": "al2-1"},
    {"check": "version", "status": "pass", "reason": "ok", "subject": ""},
]


# --- settings ---------------------------------------------------------------------------------------------


def test_settings_update_records_old_and_new_values_and_audits(admin, rf):
    settings = InfrastructureSettings.load()
    request = rf.post("/", REMOTE_ADDR="10.1.2.3")
    rows = services.settings_update(
        settings,
        {"add_tun": True, "max_environments_per_member": 50, "cvm_node_selector": {"pool": "cvm"}},
        admin,
        request,
    )

    assert {(r.field, r.old_value, r.new_value) for r in rows} == {
        ("add_tun", "off", "on"),
        ("cvm_node_selector", "{}", '{"pool": "cvm"}'),
    }
    assert all(r.changed_by == admin for r in InfrastructureSettingsChange.objects.all())
    settings.refresh_from_db()
    assert settings.add_tun is True and settings.updated_by == admin
    entry = AuditEntry.objects.get(action="infrastructure.settings_update")
    assert entry.actor == admin
    assert entry.before == {"add_tun": False, "cvm_node_selector": {}}
    assert entry.after == {"add_tun": True, "cvm_node_selector": {"pool": "cvm"}}
    assert entry.ip_address == "10.1.2.3"


def test_settings_update_without_changes_writes_nothing(admin):
    settings = InfrastructureSettings.load()
    assert services.settings_update(settings, {"add_fuse": settings.add_fuse}, admin) == []
    assert not InfrastructureSettingsChange.objects.exists()
    assert not AuditEntry.objects.filter(action="infrastructure.settings_update").exists()


def test_invalid_settings_are_not_saved(admin):
    settings = InfrastructureSettings.load()
    with pytest.raises(ValidationError):
        services.settings_update(settings, {"default_cpu_millicores": 99999}, admin)
    assert InfrastructureSettings.load().default_cpu_millicores == 2000
    assert not InfrastructureSettingsChange.objects.exists()


def test_the_toggle_is_not_a_settings_form_field(admin):
    with pytest.raises(ValueError, match="cvm_enabled"):
        services.settings_update(InfrastructureSettings.load(), {"cvm_enabled": True}, admin)


# --- the CVM toggle ---------------------------------------------------------------------------------------


def test_enable_with_a_passing_report(admin):
    report = _done_report()
    services.cvm_enable(actor=admin, report=report)

    assert InfrastructureSettings.load().cvm_enabled is True
    change = InfrastructureSettingsChange.objects.get(field="cvm_enabled")
    assert (change.old_value, change.new_value, change.changed_by) == ("off", "on", admin)
    assert AuditEntry.objects.filter(action="infrastructure.cvm_enable", actor=admin).count() == 1
    assert not AuditEntry.objects.filter(action="infrastructure.cvm_enable_override").exists()


def test_enable_is_refused_when_a_hard_requirement_fails(admin):
    report = _done_report(FAILED)
    with pytest.raises(services.CvmEnableRefused) as refused:
        services.cvm_enable(actor=admin, report=report)

    assert [f["subject"] for f in refused.value.failures] == ["al2-1"]
    assert InfrastructureSettings.load().cvm_enabled is False
    assert not InfrastructureSettingsChange.objects.exists()


def test_override_enables_and_audits_the_failing_checks(admin):
    report = _done_report(FAILED)
    services.cvm_enable(actor=admin, report=report, override=True)

    assert InfrastructureSettings.load().cvm_enabled is True
    override = AuditEntry.objects.get(action="infrastructure.cvm_enable_override")
    assert override.actor == admin
    assert override.after["report"] == report.pk
    assert override.after["failing_checks"] == [FAILED[0]]


def test_enable_needs_a_report_for_the_current_settings(admin):
    with pytest.raises(services.CvmEnableRefused, match="Run the readiness checks"):
        services.cvm_enable(actor=admin, report=None)
    stale = _done_report(cvm_backend=CvmBackend.RUNTIMECLASS)
    with pytest.raises(services.CvmEnableRefused) as refused:
        services.cvm_enable(actor=admin, report=stale)
    assert "another CVM backend or namespace" in refused.value.failures[0]["reason"]
    unfinished = ReadinessReport.objects.create(state=ReadinessReport.State.RUNNING)
    with pytest.raises(services.CvmEnableRefused):
        services.cvm_enable(actor=admin, report=unfinished)
    assert InfrastructureSettings.load().cvm_enabled is False


def test_disable_records_history_and_audit(admin):
    services.cvm_enable(actor=admin, report=_done_report())
    services.cvm_disable(actor=admin)

    assert InfrastructureSettings.load().cvm_enabled is False
    assert list(InfrastructureSettingsChange.objects.values_list("new_value", flat=True)) == ["off", "on"]
    assert AuditEntry.objects.filter(action="infrastructure.cvm_disable").count() == 1


# --- readiness runs ---------------------------------------------------------------------------------------


def test_readiness_request_queues_once(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        report = services.readiness_request(actor=admin)
        again = services.readiness_request(actor=admin)

    assert again.pk == report.pk
    assert len(callbacks) == 1
    assert report.state == ReadinessReport.State.QUEUED
    assert report.requested_by == admin
    assert AuditEntry.objects.filter(action="infrastructure.readiness_run").count() == 1


def test_readiness_run_stores_the_results(cluster, admin):
    load_profile(cluster.cluster, "demo")
    report = ReadinessReport.objects.create(requested_by=admin)
    services.readiness_run(report.pk)

    report.refresh_from_db()
    assert report.state == ReadinessReport.State.DONE
    assert report.status == "fail"
    assert report.progress_done == report.progress_total == 9
    assert report.cluster_version == "v1.31.4+simulated"
    assert report.environments_namespace == "coderadmin-environments"
    assert {r["subject"] for r in report.failures} == {"legacy-al2-c1", "pool-cos-b1"}
    assert report.cluster_cidrs
    assert report.started_at <= report.finished_at


def test_readiness_run_twice_changes_nothing(cluster, admin):
    load_profile(cluster.cluster, "cvm-ready")
    report = ReadinessReport.objects.create(requested_by=admin)
    services.readiness_run(report.pk)
    finished = ReadinessReport.objects.get(pk=report.pk).finished_at
    services.readiness_run(report.pk)
    assert ReadinessReport.objects.get(pk=report.pk).finished_at == finished


def test_enable_purpose_turns_cvms_on_when_everything_passes(cluster, admin):
    load_profile(cluster.cluster, "cvm-ready")
    report = ReadinessReport.objects.create(requested_by=admin, purpose=ReadinessReport.Purpose.ENABLE)
    services.readiness_run(report.pk)

    assert InfrastructureSettings.load().cvm_enabled is True
    assert AuditEntry.objects.get(action="infrastructure.cvm_enable").actor == admin


def test_enable_purpose_leaves_cvms_off_when_checks_fail(cluster, admin):
    load_profile(cluster.cluster, "not-ready")
    report = ReadinessReport.objects.create(requested_by=admin, purpose=ReadinessReport.Purpose.ENABLE)
    services.readiness_run(report.pk)

    assert InfrastructureSettings.load().cvm_enabled is False
    assert ReadinessReport.objects.get(pk=report.pk).failures


def test_enable_purpose_needs_a_requester_who_still_manages(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    demoted = member(username="was-admin")
    report = ReadinessReport.objects.create(requested_by=demoted, purpose=ReadinessReport.Purpose.ENABLE)
    services.readiness_run(report.pk)
    assert InfrastructureSettings.load().cvm_enabled is False


def test_no_cluster_configuration_is_reported_not_raised(settings, tmp_path, admin):
    settings.CLUSTER_MODE = "kubeconfig"
    settings.KUBECONFIG = str(tmp_path / "missing-kubeconfig")
    gw.reset_api_client(None)
    report = ReadinessReport.objects.create(requested_by=admin)
    services.readiness_run(report.pk)

    report.refresh_from_db()
    assert report.state == ReadinessReport.State.DONE
    assert [r["check"] for r in report.results] == ["cluster"]
    assert report.results[0]["reason"].startswith("Unavailable:")


def test_latest_and_running_reports():
    done = _done_report()
    running = ReadinessReport.objects.create(state=ReadinessReport.State.RUNNING)
    assert services.latest_report() == done
    assert services.running_report() == running
    ReadinessReport.objects.filter(pk=running.pk).update(created_at=timezone.now() - services.STALE_RUN * 2)
    assert services.running_report() is None


# --- namespace --------------------------------------------------------------------------------------------


def test_namespace_create_labels_it_privileged_and_audits(cluster):
    manager = site_manager(username="max")
    settings = InfrastructureSettings.load()
    settings.environments_namespace = "cvm-envs"
    settings.save()

    assert services.namespace_create(actor=manager) is True
    namespace = gw.Gateway().get("Namespace", None, "cvm-envs")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    entry = AuditEntry.objects.get(action="infrastructure.namespace_create")
    assert entry.actor == manager and entry.after["namespace"] == "cvm-envs"
    assert services.namespace_create(actor=manager) is False
    assert AuditEntry.objects.filter(action="infrastructure.namespace_create").count() == 1
