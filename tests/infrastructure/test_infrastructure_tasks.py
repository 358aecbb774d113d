"""The readiness task stores its report (called in-process here; the real-worker tests live with the
worker tests)."""

from __future__ import annotations

import pytest

from infrastructure import gateway as gw
from infrastructure.models import ReadinessReport
from infrastructure.simulator.profiles import load_profile
from infrastructure.tasks import readiness_check
from tests.factories import site_admin

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(simulated_cluster):
    gw.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gw.reset_api_client(None)


def test_task_runs_the_checks_and_stores_the_report(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    report = ReadinessReport.objects.create(requested_by=site_admin(username="ada"))

    readiness_check.apply(args=[report.pk]).get()

    report.refresh_from_db()
    assert report.state == ReadinessReport.State.DONE
    assert report.status == "pass"
    assert {row["subject"] for row in report.results if row["check"] == "nodes"} == {
        "ubuntu-focal-1",
        "ubuntu-jammy-1",
        "ubuntu-noble-1",
    }
    assert report.finished_at is not None


def test_task_for_a_finished_report_is_a_no_op(cluster):
    report = ReadinessReport.objects.create(state=ReadinessReport.State.DONE, results=[], status="pass")
    readiness_check.apply(args=[report.pk]).get()
    report.refresh_from_db()
    assert report.results == [] and report.started_at is None


def test_task_name_is_stable():
    assert readiness_check.name == "infrastructure.readiness_check"
