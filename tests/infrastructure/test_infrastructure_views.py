"""The infrastructure page through the test client: who may open it, the toggle (htmx and plain forms),
the settings form and its history, readiness runs (Celery in eager mode) with live progress, and the
cloud guides."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from coderadmin.celery import app as celery_app
from coderadmin.models import AuditEntry
from infrastructure import gateway as gw
from infrastructure import guides
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport
from infrastructure.simulator.profiles import load_profile
from tests.factories import auditor, member, site_admin, site_manager

pytestmark = pytest.mark.django_db

PAGE = reverse("infrastructure")
GUIDES = reverse("infrastructure-guides")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user():
    return site_admin(username="ada")


@pytest.fixture
def admin_client(admin_user) -> Client:
    return _client(admin_user)


@pytest.fixture
def eager() -> Iterator[None]:
    """Celery runs tasks in-process (view-level tests only). Celery reads Django's CELERY_* names too, so
    both spellings are set for the override to win."""
    keys = ("task_always_eager", "CELERY_TASK_ALWAYS_EAGER")
    saved = {key: celery_app.conf.get(key) for key in keys}
    celery_app.conf.update(dict.fromkeys(keys, True))
    yield
    celery_app.conf.update(saved)


@pytest.fixture
def cluster(simulated_cluster) -> Iterator:
    gw.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gw.reset_api_client(None)


def _done_report(results: list[dict], **fields) -> ReadinessReport:
    settings = InfrastructureSettings.load()
    values = {
        "state": ReadinessReport.State.DONE,
        "status": "fail" if any(r["status"] == "fail" for r in results) else "pass",
        "finished_at": timezone.now(),
        "results": results,
        "cvm_backend": settings.cvm_backend,
        "environments_namespace": settings.environments_namespace,
    }
    values.update(fields)
    return ReadinessReport.objects.create(**values)


def _settings_post(**overrides: str) -> dict[str, str]:
    settings = InfrastructureSettings.load()
    data = {
        "cvm_backend": settings.cvm_backend,
        "supervisor_image": settings.supervisor_image,
        "inner_bridge_cidr": settings.inner_bridge_cidr,
        "environments_namespace": settings.environments_namespace,
        "storage_class": "",
        "cvm_node_selector": "",
        "cvm_tolerations": "",
        "default_cpu_millicores": "2000",
        "max_cpu_millicores": "8000",
        "default_memory_mib": "4096",
        "max_memory_mib": "16384",
        "default_disk_gib": "20",
        "max_disk_gib": "100",
        "default_gpu_count": "0",
        "max_gpu_count": "0",
        "max_environments_per_member": "50",
        "build_timeout_seconds": "900",
        "cvm_termination_grace_seconds": "90",
    }
    data.update(overrides)
    return data


# --- access -----------------------------------------------------------------------------------------------

GET_URLS = [PAGE, GUIDES, reverse("infrastructure-cvm-enable")]
POST_URLS = [
    reverse("infrastructure-settings"),
    reverse("infrastructure-cvm"),
    reverse("infrastructure-cvm-enable"),
    reverse("infrastructure-cvm-override"),
    reverse("infrastructure-checks-run"),
    reverse("infrastructure-namespace-create"),
]


@pytest.mark.parametrize("url", GET_URLS)
def test_anonymous_visitors_go_to_login(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("url", POST_URLS)
@pytest.mark.parametrize("role", [member, auditor])
def test_members_and_auditors_get_403(url, role):
    client = _client(role(username="someone"))
    assert client.get(PAGE).status_code == 403
    assert client.post(url).status_code == 403
    assert InfrastructureSettings.load().cvm_enabled is False
    assert not ReadinessReport.objects.exists()


@pytest.mark.parametrize("role", [site_admin, site_manager])
@pytest.mark.parametrize("url", GET_URLS)
def test_admins_and_managers_may_open_the_pages(role, url):
    assert _client(role(username="boss")).get(url).status_code == 200


def test_report_page_access():
    report = _done_report([])
    url = reverse("infrastructure-report", args=[report.pk])
    assert _client(member(username="m")).get(url).status_code == 403
    assert _client(site_manager(username="x")).get(url).status_code == 200


@pytest.mark.parametrize("url", POST_URLS)
def test_posts_need_the_csrf_token(admin_user, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(url, {"enabled": "on"}).status_code == 403
    assert not ReadinessReport.objects.exists()


def test_page_has_no_inline_scripts_or_styles(admin_client):
    for url in (PAGE, GUIDES + "?provider=gke&cluster_name=a&location=us-central1"):
        content = admin_client.get(url).content.decode()
        assert "style=" not in content
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", content) is None


# --- page and settings ------------------------------------------------------------------------------------


def test_page_shows_toggle_note_and_every_setting(admin_client):
    content = admin_client.get(PAGE).content.decode()
    assert "Enable Container-Based Virtual Machines" in content
    assert "Changes apply to new builds and rebuilds" in content
    assert "No readiness check has run yet." in content
    for name in _settings_post():
        assert f'name="{name}"' in content
    for name in ("default_to_cvm", "add_tun", "add_fuse"):
        assert f'name="{name}"' in content


def test_saving_settings_writes_history_shown_on_the_page(admin_client, admin_user):
    data = _settings_post(add_tun="on", cvm_node_selector="pool=cvm", max_environments_per_member="10")
    response = admin_client.post(reverse("infrastructure-settings"), data)

    assert response.status_code == 302
    settings = InfrastructureSettings.load()
    assert settings.add_tun is True
    assert settings.cvm_node_selector == {"pool": "cvm"}
    assert settings.max_environments_per_member == 10
    assert set(InfrastructureSettingsChange.objects.values_list("field", flat=True)) == {
        "add_tun",
        "cvm_node_selector",
        "max_environments_per_member",
    }
    assert AuditEntry.objects.get(action="infrastructure.settings_update").actor == admin_user
    page = admin_client.get(PAGE).content.decode()
    assert "max_environments_per_member" in page and "ada" in page
    assert "Saved 3 change(s). They apply to new builds and rebuilds." in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("inner_bridge_cidr", "8.8.8.1/24", "public internet range"),
        ("cvm_node_selector", "no equals sign", "write key=value"),
        ("cvm_tolerations", '{"key": "x"}', "must be a JSON list"),
        ("default_cpu_millicores", "9000", "above the maximum"),
        ("environments_namespace", "Bad_NS", "lowercase"),
    ],
)
def test_invalid_settings_show_errors_and_change_nothing(admin_client, field, value, message):
    response = admin_client.post(reverse("infrastructure-settings"), _settings_post(**{field: value}))
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert not InfrastructureSettingsChange.objects.exists()


def test_bridge_cidr_may_not_overlap_the_pod_ranges_found_by_the_checks(admin_client):
    _done_report([], cluster_cidrs=["172.30.0.0/16"])
    response = admin_client.post(
        reverse("infrastructure-settings"), _settings_post(inner_bridge_cidr="172.30.5.1/24")
    )
    assert response.status_code == 400
    assert "overlaps the cluster" in html.unescape(response.content.decode())
    ok = admin_client.post(
        reverse("infrastructure-settings"), _settings_post(inner_bridge_cidr="172.29.0.1/24")
    )
    assert ok.status_code == 302
    assert InfrastructureSettings.load().inner_bridge_cidr == "172.29.0.1/24"


# --- toggle -----------------------------------------------------------------------------------------------


def test_turning_on_without_js_leads_to_the_confirmation(admin_client):
    response = admin_client.post(reverse("infrastructure-cvm"), {"enabled": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("infrastructure-cvm-enable")
    assert InfrastructureSettings.load().cvm_enabled is False
    confirm = admin_client.get(response["Location"]).content.decode()
    assert "Run checks and turn CVMs on" in confirm


def test_turning_on_with_htmx_redirects_the_browser(admin_client):
    response = admin_client.post(
        reverse("infrastructure-cvm"), {"enabled": "on"}, headers={"HX-Request": "true"}
    )
    assert response["HX-Redirect"] == reverse("infrastructure-cvm-enable")


def test_turning_off_with_htmx_returns_the_switch(admin_client, admin_user):
    settings = InfrastructureSettings.load()
    settings.cvm_enabled = True
    settings.save()
    response = admin_client.post(reverse("infrastructure-cvm"), {}, headers={"HX-Request": "true"})

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<section id="cvm-toggle"')
    assert "<html" not in content
    assert InfrastructureSettings.load().cvm_enabled is False
    assert AuditEntry.objects.get(action="infrastructure.cvm_disable").actor == admin_user


def test_turning_off_without_js_redirects(admin_client):
    response = admin_client.post(reverse("infrastructure-cvm"), {})
    assert response.status_code == 302 and response["Location"] == PAGE


def test_toggle_shows_the_last_check_state(admin_client):
    _done_report([{"check": "nodes", "status": "fail", "reason": "old kernel", "subject": "n1"}])
    content = admin_client.get(PAGE).content.decode()
    assert "Last readiness check:" in content
    assert "1 failed" in content


def test_enabling_runs_the_checks_and_turns_cvms_on(
    admin_client, cluster, eager, django_capture_on_commit_callbacks
):
    load_profile(cluster.cluster, "cvm-ready")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("infrastructure-cvm-enable"))

    report = ReadinessReport.objects.get()
    assert response["Location"] == reverse("infrastructure-report", args=[report.pk])
    assert report.purpose == ReadinessReport.Purpose.ENABLE and report.state == ReadinessReport.State.DONE
    assert InfrastructureSettings.load().cvm_enabled is True
    page = admin_client.get(response["Location"]).content.decode()
    assert "Container-Based Virtual Machines are on." in page
    assert "ubuntu-noble-1" in page


def test_failed_checks_refuse_and_offer_the_override(
    admin_client, admin_user, cluster, eager, django_capture_on_commit_callbacks
):
    load_profile(cluster.cluster, "not-ready")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("infrastructure-cvm-enable"))
    report = ReadinessReport.objects.get()
    page = admin_client.get(response["Location"]).content.decode()

    assert InfrastructureSettings.load().cvm_enabled is False
    assert "CVMs were not turned on" in page
    assert "centos7-1" in page
    assert 'name="override"' in page

    refused = admin_client.post(reverse("infrastructure-cvm-override"), {"report": report.pk})
    assert refused.status_code == 400
    assert "Tick the box" in refused.content.decode()
    assert InfrastructureSettings.load().cvm_enabled is False

    accepted = admin_client.post(
        reverse("infrastructure-cvm-override"), {"report": report.pk, "override": "on"}
    )
    assert accepted.status_code == 302
    assert InfrastructureSettings.load().cvm_enabled is True
    entry = AuditEntry.objects.get(action="infrastructure.cvm_enable_override")
    assert entry.actor == admin_user
    assert {row["subject"] for row in entry.after["failing_checks"]} >= {
        "centos7-1",
        "al2-1",
        "bottlerocket-1",
    }


def test_override_of_an_unknown_report(admin_client):
    response = admin_client.post(reverse("infrastructure-cvm-override"), {"report": 999, "override": "on"})
    assert response.status_code == 404
    assert InfrastructureSettings.load().cvm_enabled is False


# --- readiness runs ---------------------------------------------------------------------------------------


def test_run_checks_button_shows_the_results(
    admin_client, cluster, eager, django_capture_on_commit_callbacks
):
    load_profile(cluster.cluster, "demo")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("infrastructure-checks-run"))
    report = ReadinessReport.objects.get()
    assert response["Location"] == reverse("infrastructure-report", args=[report.pk])

    page = admin_client.get(PAGE).content.decode()
    assert "pool-cos-b1" in page and "Container-Optimized OS" in page
    assert InfrastructureSettings.load().cvm_enabled is False  # a manual run never enables


def test_unreachable_cluster_is_shown_and_nothing_breaks(
    admin_client, settings, tmp_path, eager, django_capture_on_commit_callbacks
):
    settings.CLUSTER_MODE = "kubeconfig"
    settings.KUBECONFIG = str(tmp_path / "absent")
    gw.reset_api_client(None)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("infrastructure-checks-run"))
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    assert "Unavailable:" in page.content.decode()
    assert admin_client.get(GUIDES).status_code == 200


def test_live_progress_polls_until_the_report_is_finished(admin_client):
    report = ReadinessReport.objects.create(
        state=ReadinessReport.State.RUNNING, progress_done=3, progress_total=9, progress_label="Nodes"
    )
    url = reverse("infrastructure-report", args=[report.pk])
    running = admin_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert 'hx-trigger="every 2s"' in running.content.decode()
    assert "Nodes" in running.content.decode()

    ReadinessReport.objects.filter(pk=report.pk).update(
        state=ReadinessReport.State.DONE, status="pass", finished_at=timezone.now()
    )
    finished = admin_client.get(url, headers={"HX-Request": "true"})
    assert finished.status_code == 286
    assert "hx-trigger" not in finished.content.decode()


def test_report_page_works_without_js(admin_client):
    report = ReadinessReport.objects.create(state=ReadinessReport.State.QUEUED)
    content = admin_client.get(reverse("infrastructure-report", args=[report.pk])).content.decode()
    assert "<progress" in content and "Refresh" in content


def test_missing_namespace_offers_to_create_it(admin_client, admin_user, cluster):
    _done_report(
        [{"check": "namespace", "status": "fail", "reason": "missing", "subject": ""}], namespace_missing=True
    )
    assert "Create namespace coderadmin-environments" in admin_client.get(PAGE).content.decode()

    response = admin_client.post(reverse("infrastructure-namespace-create"))
    assert response.status_code == 302
    assert gw.Gateway().get_or_none("Namespace", None, "coderadmin-environments") is not None
    assert AuditEntry.objects.get(action="infrastructure.namespace_create").actor == admin_user


# --- guides -----------------------------------------------------------------------------------------------


def _pre_blocks(content: str) -> list[str]:
    return [
        html.unescape(block) for block in re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", content, re.S)
    ]


def test_gke_guide_builds_quoted_commands(admin_client):
    response = admin_client.get(
        GUIDES, {"provider": "gke", "cluster_name": "dev", "location": "europe-west1-b", "num_nodes": "3"}
    )
    blocks = _pre_blocks(response.content.decode())
    assert any("gcloud container clusters create dev" in b and "UBUNTU_CONTAINERD" in b for b in blocks)
    assert any("--zone europe-west1-b" in b for b in blocks)
    assert 'data-copy-target="gke-command-1"' in response.content.decode()


def test_guide_errors_are_shown_per_field_and_nothing_is_built(admin_client):
    response = admin_client.get(
        GUIDES, {"provider": "gke", "cluster_name": "dev; rm -rf /", "location": "mars", "num_nodes": "0"}
    )
    content = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert content.count('class="errorlist"') == 3
    assert "gcloud container clusters create" not in content
    assert 'value="dev; rm -rf /"' in content  # the typed value is shown back (escaped), not executed


def test_eks_guide_yaml_parses_to_the_config(admin_client):
    data = {"provider": "eks", "cluster_name": "dev", "region": "eu-west-1", "ami_family": "Ubuntu2204"}
    content = admin_client.get(GUIDES, data).content.decode()
    config = yaml.safe_load(_pre_blocks(content)[0])
    inp, _ = guides.validate_eks(data)
    assert config == guides.eks_config(inp)
    assert config["nodeGroups"][0]["amiFamily"] == "Ubuntu2204"
    assert "eksctl create cluster --config-file coderadmin-cvm-cluster.yaml" in _pre_blocks(content)


def test_aks_and_sysbox_guides(admin_client):
    aks = admin_client.get(GUIDES, {"provider": "aks", "resource_group": "rg", "cluster_name": "dev"})
    assert any("--os-sku Ubuntu" in b for b in _pre_blocks(aks.content.decode()))
    sysbox = admin_client.get(GUIDES, {"provider": "sysbox", "node_names": "node-a, node-b"})
    blocks = _pre_blocks(sysbox.content.decode())
    assert "kubectl label nodes node-a node-b sysbox-install=yes" in blocks
    bad = admin_client.get(GUIDES, {"provider": "sysbox", "node_names": "$(reboot)"})
    assert "Not a node name" in html.unescape(bad.content.decode())


def test_guides_page_has_every_tab_and_the_image_help(admin_client):
    content = admin_client.get(GUIDES).content.decode()
    for anchor in ("gke", "eks", "aks", "sysbox", "images"):
        assert f'id="{anchor}"' in content
    assert "systemctl enable docker" in html.unescape(content)
    assert "/sbin/init" in content
    assert "sysbox-runtime=running" in content
