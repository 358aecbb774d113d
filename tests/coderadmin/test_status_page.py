"""Manage > System status: heartbeats of the background processes and reachability of the
database, the broker and the cluster."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from kubernetes import client as k8s

from coderadmin import heartbeat
from infrastructure import gateway as gw

STATUS = reverse("manage-status")


@pytest.fixture(autouse=True)
def private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def cluster(simulated_cluster):
    gw.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gw.reset_api_client(None)


@pytest.fixture
def unreachable_cluster():
    configuration = k8s.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    api = k8s.ApiClient(configuration)
    gw.reset_api_client(api)
    yield
    gw.reset_api_client(None)
    api.close()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "status"), [("admin", 200), ("manager", 200), ("auditor", 200), ("member", 403), ("staff", 403)]
)
def test_who_may_see_the_status(clients, cluster, kind, status):
    assert clients[kind].get(STATUS).status_code == status


def _rows(response) -> dict[str, object]:
    rows = {p.process: p for p in response.context["processes"]}
    rows.update({c["name"]: c for c in response.context["checks"]})
    return rows


@pytest.mark.django_db
def test_heartbeats_show_alive_stale_and_never_seen(clients, cluster, settings):
    settings.HEARTBEAT_MAX_AGE_SECONDS = 60
    heartbeat.beat("worker")
    heartbeat.beat("beat", now=time.time() - 600)
    response = clients["auditor"].get(STATUS)
    rows = _rows(response)
    assert rows["worker"].alive
    assert not rows["beat"].alive
    assert rows["beat"].age >= 600
    assert rows["watcher"].age is None
    page = response.content.decode()
    assert "Alive" in page
    assert "Stale" in page
    assert "Never seen" in page


@pytest.mark.django_db
def test_dependencies_are_reachable(clients, cluster):
    response = clients["admin"].get(STATUS)
    rows = _rows(response)
    assert rows["database"]["ok"]
    assert rows["broker"]["ok"]
    assert rows["cluster"]["ok"]
    assert response.context["web_ready"]
    assert "ready" in response.content.decode()


@pytest.mark.django_db
def test_an_unreachable_cluster_is_shown_quickly_without_failing_the_page(clients, unreachable_cluster):
    started = time.monotonic()
    response = clients["manager"].get(STATUS)
    assert response.status_code == 200
    assert time.monotonic() - started < 10
    rows = _rows(response)
    assert not rows["cluster"]["ok"]
    assert "Unreachable" in response.content.decode()
    # The web process's own readiness does not depend on the cluster.
    assert response.context["web_ready"]


@pytest.mark.django_db
def test_a_broken_broker_makes_the_web_process_not_ready(clients, cluster, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "missing"),
        "data_folder_out": str(tmp_path / "missing"),
        "processed_folder": str(tmp_path / "missing"),
    }
    response = clients["admin"].get(STATUS)
    assert not _rows(response)["broker"]["ok"]
    assert not response.context["web_ready"]
    assert "not ready" in response.content.decode()
