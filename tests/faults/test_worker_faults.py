"""A worker process killed with SIGKILL in the middle of provisioning: a new worker and the
reconciler's re-enqueue finish the build, exactly once.

The worker and the watcher are real processes (``celery -A coderadmin worker``, ``manage.py
watch_cluster``) on the test's database: PostgreSQL's test database as it is, or, with SQLite, a file
copy of the in-memory test database that this test then uses too.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from coderadmin.celery import app as celery_app
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import reconciler
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user
from tests.faults.conftest import CLAIMS, PODS, broker_url, celery_broker, pods_of, record_requests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def shared_database(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL other processes can open, for the database this test uses."""
    conn = connections["default"]
    if conn.vendor == "postgresql":
        s = conn.settings_dict
        auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else "")
        yield f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        return
    path = tmp_path / "shared.sqlite3"
    conn.ensure_connection()
    copy = sqlite3.connect(path)
    conn.connection.backup(copy)
    copy.close()
    file_connection = conn.__class__({**conn.settings_dict, "NAME": str(path)}, "default")
    connections["default"] = file_connection
    try:
        yield f"sqlite:///{path}"
    finally:
        file_connection.close()
        connections["default"] = conn


@contextmanager
def shared_broker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Redis (the fault suites' database) or a filesystem broker in ``tmp_path``, for this process
    and the environment variables that give the same broker to a child process."""
    if settings.REDIS_URL:
        url = broker_url()
        with celery_broker(url):
            celery_app.control.purge()
            yield {"REDIS_URL": url}
        return
    folders = {name: tmp_path / "broker" / name for name in ("in", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(folders["in"]),
        "data_folder_out": str(folders["in"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    with celery_broker("filesystem://"):
        celery_app.conf.broker_transport_options = options
        celery_app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = options
        yield {"CODERADMIN_VAR_DIR": str(tmp_path)}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "coderadmin",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        log,
    )


@contextmanager
def stopped_at_exit(*processes: subprocess.Popen) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


def test_a_worker_killed_mid_build_is_recovered_and_the_build_completes_once(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        requests = record_requests(handle)
        gateway = gw.Gateway(handle.api_client)
        with shared_database(tmp_path) as database_url, shared_broker(tmp_path) as broker_env:
            child_env = {
                **os.environ,
                **broker_env,
                "DATABASE_URL": database_url,
                "CODERADMIN_CLUSTER": "simulated",
                "SIMULATOR_KUBECONFIG": str(handle.kubeconfig_path),
            }
            cs.configure()
            watcher = spawn(
                [sys.executable, "manage.py", "watch_cluster"], child_env, tmp_path / "watcher.log"
            )
            first = worker(child_env, tmp_path / "worker-1.log")
            with stopped_at_exit(watcher, first):
                held = handle.cluster.faults.add("create", CLAIMS, count=1, kind="delay", delay=4.0)
                env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
                cs.eventually(
                    lambda: held.hits == 1, timeout=40, what=f"the worker's first write\n{logs(tmp_path)}"
                )
                os.kill(first.pid, signal.SIGKILL)
                assert first.wait(timeout=10) == -signal.SIGKILL
                time.sleep(4.5)  # the held request completes on the server: the claim now exists
                assert cs.state_of(env) == State.CREATING
                assert requests.matching("POST", PODS) == []

                second = worker(child_env, tmp_path / "worker-2.log")
                with stopped_at_exit(second):
                    Environment.objects.filter(pk=env.pk).update(
                        updated_at=timezone.now() - timedelta(minutes=3)
                    )
                    report = reconciler.reconcile(gateway)
                    assert report.requeued == 1, report
                    env = cs.wait_state(env, State.RUNNING, timeout=60)
            assert len(pods_of(gateway, env)) == 1
            assert len(requests.matching("POST", PODS)) == 1
            assert env.events.filter(message="Pod created; building.").count() == 1
            assert env.events.filter(message__startswith="Environment is running").count() == 1
            cs.assert_no_leaks(gateway)
