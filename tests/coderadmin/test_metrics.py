"""/metrics: the bearer token, the database gauges, and counters recorded by other processes.

Every process of the test run writes to the same multiprocess directory, so counter tests compare
values before and after (other tests may count too, never down).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from celery import Task
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from coderadmin import metrics
from coderadmin.celery import app as celery_app
from coderadmin.heartbeat import beat_tick
from coderadmin.management.commands.serve_metrics import MetricsHandler
from environments import services
from environments.models import Environment
from environments.states import State
from tests.environments import cluster_support as cs
from tests.environments.factories import EnvironmentFactory, make_user

TOKEN = "scrape-token-for-tests"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(**headers: str) -> dict[tuple[str, tuple], float]:
    """Sample values keyed by (sample name, sorted labels)."""
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_without_a_configured_token_the_endpoint_does_not_exist(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_a_missing_or_wrong_token_is_refused(token, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"coderadmin_" not in response.content


@pytest.mark.django_db
def test_prometheus_scrapes_a_pod_by_ip_over_plain_http(token, settings):
    settings.ALLOWED_HOSTS = ["coderadmin.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    samples = scrape(HTTP_HOST="10.1.2.3:8000")
    assert ("coderadmin_environments", (("kind", "standard"), ("state", "running"))) in samples


@pytest.mark.django_db
def test_environment_gauges_count_the_rows_at_scrape_time(token):
    EnvironmentFactory.create_batch(2, state=State.RUNNING)
    EnvironmentFactory(state=State.OFF, cvm=True)
    samples = scrape()
    assert value(samples, "coderadmin_environments", state="running", kind="standard") == 2
    assert value(samples, "coderadmin_environments", state="off", kind="cvm") == 1
    # Every state and kind is present, zero included, so dashboards never see gaps.
    assert ("coderadmin_environments", (("kind", "cvm"), ("state", "error"))) in samples
    Environment.objects.filter(state=State.RUNNING).update(state=State.ERROR)
    samples = scrape()
    assert value(samples, "coderadmin_environments", state="running", kind="standard") == 0
    assert value(samples, "coderadmin_environments", state="error", kind="standard") == 2


@pytest.mark.django_db
def test_counters_of_the_api_reach_the_endpoint(token):
    before = scrape()
    metrics.kubernetes_api_error(403)
    metrics.kubernetes_api_error(403)
    metrics.kubernetes_api_error(None)
    metrics.watcher_reconnect()
    metrics.reconciler_sweep({"pod_missing": 2, "orphan_deleted": 0, "requeued": 1})
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("coderadmin_kubernetes_api_errors_total", code="403") == 2
    assert grew("coderadmin_kubernetes_api_errors_total", code="0") == 1
    assert grew("coderadmin_watcher_reconnects_total") >= 1
    assert grew("coderadmin_reconciler_sweeps_total") >= 1
    assert grew("coderadmin_reconciler_fixes_total", fix="pod_missing") >= 2
    assert grew("coderadmin_reconciler_fixes_total", fix="requeued") >= 1


@celery_app.task(name="tests.metrics.fails")
def _failing_task() -> None:
    raise ValueError("boom")


@celery_app.task(name="tests.metrics.retries", bind=True, max_retries=1)
def _retrying_task(self: Task) -> None:
    if self.request.retries == 0:
        raise self.retry(countdown=0)


@pytest.mark.django_db
def test_task_durations_retries_and_failures_are_counted(token):
    before = scrape()
    beat_tick.apply()
    _failing_task.apply()
    _retrying_task.apply()
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("coderadmin_task_duration_seconds_count", task="coderadmin.beat_tick") == 1
    assert grew("coderadmin_task_failures_total", task="tests.metrics.fails") == 1
    assert grew("coderadmin_task_retries_total", task="tests.metrics.retries") == 1
    assert grew("coderadmin_task_failures_total", task="tests.metrics.retries") == 0


@pytest.mark.django_db
def test_counts_of_another_process_are_merged_into_the_endpoint(token):
    """The multiprocess directory is what carries a worker's numbers to the web process."""
    before = scrape()
    code = "from coderadmin import metrics; metrics.kubernetes_api_error(599); metrics.watcher_reconnect()"
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=os.environ.copy(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    after = scrape()
    code_599 = ("coderadmin_kubernetes_api_errors_total", (("code", "599"),))
    assert after[code_599] - before.get(code_599, 0.0) >= 1


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        yield handle


@pytest.mark.django_db(transaction=True)
def test_metrics_after_a_scripted_lifecycle_on_a_worker(token, demo, tmp_path):
    """create → running → stop → off → delete with a real Celery worker and the watcher."""
    before = scrape()
    cs.configure()
    owner = make_user("metrics-owner")
    with cs.sqlite_waits_for_locks(), cs.celery_worker(), cs.running_watcher(tmp=tmp_path):
        env = cs.create(owner, cs.image("ghcr.io/coderadmin/example-plain"), name="metered")
        env = cs.wait_state(env, State.RUNNING)
        running = scrape()
        services.environment_stop(env, actor=owner)
        env = cs.wait_state(env, State.OFF)
        services.environment_delete(env, actor=owner)
        cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
        after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(running, "coderadmin_environments", state="running", kind="standard") == 1
    assert value(after, "coderadmin_environments", state="running", kind="standard") == 0
    assert grew("coderadmin_build_duration_seconds_count") >= 1
    assert grew("coderadmin_time_to_running_seconds_count", kind="standard") >= 1
    assert grew("coderadmin_task_duration_seconds_count", task="environments.stop") >= 1
    assert grew("coderadmin_task_duration_seconds_count", task="environments.delete") >= 1


@pytest.fixture
def sidecar(token):
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_sidecar_serves_the_pods_counters_with_the_same_token(sidecar):
    """serve_metrics: how a worker or watcher pod without a web process is scraped on Kubernetes."""
    metrics.watcher_reconnect()
    assert _get(f"{sidecar}/metrics")[0] == 401
    assert _get(f"{sidecar}/metrics", "wrong")[0] == 401
    assert _get(f"{sidecar}/other", TOKEN)[0] == 404
    status, body = _get(f"{sidecar}/metrics", TOKEN)
    assert status == 200
    assert "coderadmin_watcher_reconnects_total" in body
    assert "coderadmin_environments{" not in body  # the database gauges come from the web endpoint


def test_without_a_token_the_sidecar_answers_404_instead_of_crashing(sidecar, settings):
    settings.METRICS_TOKEN = ""
    assert _get(f"{sidecar}/metrics")[0] == 404
    assert _get(f"{sidecar}/metrics", "")[0] == 404


def test_the_sidecar_command_keeps_running_without_a_token(settings, monkeypatch):
    """A pod whose METRICS_TOKEN is not set yet must not crash-loop: the command serves (404s)."""
    settings.METRICS_TOKEN = ""
    served = []
    monkeypatch.setattr(ThreadingHTTPServer, "serve_forever", lambda server: served.append(server))
    err = io.StringIO()
    call_command("serve_metrics", "--port", "0", "--bind", "127.0.0.1", stderr=err)
    assert len(served) == 1
    assert "METRICS_TOKEN is not set" in err.getvalue()


@pytest.mark.django_db
def test_a_real_worker_process_reports_its_tasks_and_its_heartbeat(token, tmp_path, settings):
    """``celery worker`` as a separate process (filesystem broker in a private directory) runs
    a task sent by yet another process; its numbers reach this process's endpoint."""
    env = {
        **os.environ,
        "CODERADMIN_VAR_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(settings.PROMETHEUS_MULTIPROC_DIR),
    }
    key = ("coderadmin_task_duration_seconds_count", (("task", "coderadmin.beat_tick"),))
    before = scrape().get(key, 0.0)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "coderadmin",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        send = "from coderadmin.heartbeat import beat_tick; beat_tick.delay()"
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", send], cwd=ROOT, env=env, check=True, timeout=60
        )
        cs.eventually(lambda: scrape().get(key, 0.0) > before, timeout=60, what="the worker ran the task")
        assert (tmp_path / "heartbeats" / "worker").exists()  # worker_ready in the real worker
        assert (tmp_path / "heartbeats" / "beat").exists()  # the publishing process of the tick
    finally:
        worker.terminate()
        worker.wait(timeout=30)
