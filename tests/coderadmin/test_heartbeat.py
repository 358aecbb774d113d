"""Heartbeats of worker, beat and watcher, and the check_heartbeat probe command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import signals as celery_signals
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from coderadmin import heartbeat

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.HEARTBEAT_MAX_AGE_SECONDS = 120
    return tmp_path


def test_a_beat_is_written_to_a_file_and_to_the_cache(private_var):
    heartbeat.beat("worker", now=1000.5)
    assert float((private_var / "heartbeats" / "worker").read_text()) == 1000.5
    assert cache.get("heartbeat:worker") == 1000.5
    assert heartbeat.last_seen("worker") == 1000.5


def test_the_newest_of_file_and_cache_counts(private_var):
    heartbeat.beat("beat", now=2000)
    cache.set("heartbeat:beat", 3000)
    assert heartbeat.last_seen("beat") == 3000
    assert heartbeat.last_seen("beat", use_cache=False) == 2000


def test_the_watchers_own_heartbeat_file_is_read(private_var):
    (private_var / "watcher.heartbeat").write_text("4242\n")
    assert heartbeat.last_seen("watcher") == 4242


def test_liveness_compares_the_age_with_the_limit():
    heartbeat.beat("worker", now=time.time() - 30)
    assert heartbeat.liveness("worker").alive
    assert not heartbeat.liveness("worker", maximum=10).alive
    never = heartbeat.liveness("beat")
    assert never.age is None
    assert not never.alive


def test_a_broken_cache_does_not_stop_the_process(monkeypatch, private_var):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "set", broken)
    monkeypatch.setattr(cache, "get", broken)
    heartbeat.beat("worker", now=77)
    assert heartbeat.last_seen("worker") == 77


class FakeTimer:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def call_repeatedly(self, secs, fun, args=()):
        self.calls.append((secs, fun, args))


class FakeConsumer:
    def __init__(self) -> None:
        self.timer = FakeTimer()


def test_worker_ready_beats_and_schedules_beats_on_the_worker_loop(settings):
    settings.HEARTBEAT_INTERVAL_SECONDS = 15
    consumer = FakeConsumer()
    celery_signals.worker_ready.send(sender=consumer)
    assert heartbeat.liveness("worker").alive
    [(secs, fun, args)] = consumer.timer.calls
    assert secs == 15
    cache.clear()
    (Path(django_settings.VAR_DIR) / "heartbeats" / "worker").unlink()
    fun(*args)
    assert heartbeat.liveness("worker").alive


def test_beat_beats_when_it_starts_and_when_it_publishes_the_tick():
    celery_signals.beat_init.send(sender=object())
    assert heartbeat.liveness("beat").alive
    cache.clear()
    (Path(django_settings.VAR_DIR) / "heartbeats" / "beat").unlink()
    celery_signals.after_task_publish.send(sender="environments.build", headers={}, body=(), exchange="")
    assert heartbeat.last_seen("beat") is None
    celery_signals.after_task_publish.send(sender=heartbeat.BEAT_TICK_TASK, headers={}, body=(), exchange="")
    assert heartbeat.liveness("beat").alive


def test_beat_schedules_the_tick_at_the_heartbeat_interval():
    entry = django_settings.CELERY_BEAT_SCHEDULE["coderadmin.beat_tick"]
    assert entry["task"] == heartbeat.BEAT_TICK_TASK
    assert entry["schedule"] == django_settings.HEARTBEAT_INTERVAL_SECONDS
    assert django_settings.HEARTBEAT_INTERVAL_SECONDS < django_settings.HEARTBEAT_MAX_AGE_SECONDS


def test_check_heartbeat_passes_when_fresh(capsys):
    heartbeat.beat("worker")
    call_command("check_heartbeat", "worker", "--max-age", "60")
    assert "worker: alive" in capsys.readouterr().out


def test_check_heartbeat_fails_when_stale_or_missing():
    heartbeat.beat("beat", now=time.time() - 300)
    with pytest.raises(CommandError, match=r"limit 60s") as stale:
        call_command("check_heartbeat", "beat", "--max-age", "60")
    assert stale.value.returncode == 1
    with pytest.raises(CommandError, match="no heartbeat"):
        call_command("check_heartbeat", "watcher")


def _probe(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CODERADMIN_VAR_DIR": str(var_dir)}
    return subprocess.run(
        [sys.executable, "manage.py", "check_heartbeat", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_probe_reads_a_beat_written_by_another_process(private_var):
    """How compose and Kubernetes use it: the probe is a separate process in the same container."""
    heartbeat.beat("worker")
    assert _probe(private_var, "worker", "--max-age", "60", "--file-only").returncode == 0
    heartbeat.beat("worker", now=time.time() - 600)
    failed = _probe(private_var, "worker", "--max-age", "60", "--file-only")
    assert failed.returncode == 1
    assert "(limit 60s)" in failed.stderr


def test_a_real_beat_process_keeps_its_heartbeat_fresh(tmp_path):
    """``celery beat`` beats at start and again each time it publishes the tick."""
    env = {**os.environ, "CODERADMIN_VAR_DIR": str(tmp_path), "HEARTBEAT_INTERVAL_SECONDS": "1"}
    beat_process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "coderadmin",
            "beat",
            "--schedule",
            str(tmp_path / "schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = tmp_path / "heartbeats" / "beat"
    try:
        stamps: set[str] = set()
        deadline = time.monotonic() + 60
        while len(stamps) < 3 and time.monotonic() < deadline:
            if path.exists():
                stamps.add(path.read_text())
            time.sleep(0.2)
        assert len(stamps) >= 3, f"beat recorded {len(stamps)} heartbeats"
    finally:
        beat_process.terminate()
        beat_process.wait(timeout=30)
    assert _probe(tmp_path, "beat", "--max-age", "60", "--file-only").returncode == 0
