"""The shared Lease election loop and ``manage.py run_beat`` on the simulated cluster."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from coderadmin import heartbeat
from infrastructure import gateway as gw
from infrastructure.leader import LeaderElection
from infrastructure.management.commands import run_beat

NAMESPACE = "default"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def eventually(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Candidate:
    """One replica: runs the election loop on a thread and records whether its work runs."""

    def __init__(self, cluster, identity: str) -> None:
        self.election = LeaderElection(gw.Gateway(cluster.api_client), NAMESPACE, identity, "test-singleton")
        self.stop = threading.Event()
        self.running = threading.Event()
        self.starts = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _start(self) -> None:
        self.starts += 1
        self.running.set()

    def _run(self) -> None:
        self.election.run(self.stop, start=self._start, halt=self.running.clear, renew_every=0.05)

    def __enter__(self) -> Candidate:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_one_of_two_candidates_runs_and_the_other_takes_over_when_it_stops(simulated_cluster):
    with Candidate(simulated_cluster, "a") as a, Candidate(simulated_cluster, "b") as b:
        eventually(lambda: a.running.is_set() or b.running.is_set(), "a leader")
        leader, standby = (a, b) if a.running.is_set() else (b, a)
        time.sleep(0.5)  # many renewal rounds
        assert not standby.running.is_set()
        assert leader.starts == 1
        leader.stop.set()
        leader.thread.join(timeout=10)
        assert not leader.running.is_set()  # halted on exit, lease released
        eventually(standby.running.is_set, "the standby to take over")


def test_the_leader_halts_its_work_when_the_lease_is_taken(simulated_cluster):
    gateway = gw.Gateway(simulated_cluster.api_client)
    with Candidate(simulated_cluster, "a") as a:
        eventually(a.running.is_set, "a to lead")
        lease = gateway.get("Lease", NAMESPACE, "test-singleton")
        lease["spec"]["holderIdentity"] = "intruder"
        lease["spec"]["renewTime"] = "2999-01-01T00:00:00.000000Z"
        gateway.replace(lease)
        eventually(lambda: not a.running.is_set(), "a to halt")


def test_work_that_dies_while_leading_is_started_again(simulated_cluster):
    alive = iter([False, True, True, True])
    starts: list[int] = []
    stop = threading.Event()
    election = LeaderElection(gw.Gateway(simulated_cluster.api_client), NAMESPACE, "c", "restart")

    def start() -> None:
        starts.append(1)
        if len(starts) == 2:
            stop.set()

    election.run(stop, start=start, halt=lambda: None, alive=lambda: next(alive), renew_every=0.01)
    assert len(starts) == 2


@pytest.mark.django_db(transaction=True)
def test_only_one_run_beat_runs_beat_and_the_standby_takes_over(
    simulated_cluster, tmp_path, settings, monkeypatch
):
    settings.VAR_DIR = tmp_path
    stops = [threading.Event(), threading.Event()]
    elections = [
        LeaderElection(gw.Gateway(simulated_cluster.api_client), NAMESPACE, name, run_beat.LEASE_NAME)
        for name in ("first", "second")
    ]
    processes: list[run_beat.BeatProcess] = []
    original = run_beat.BeatProcess

    class Recorded(original):
        def __init__(self, command):
            super().__init__(command)
            processes.append(self)

    threads = [
        threading.Thread(target=run_beat.run, args=(stop, election, SLEEPER), kwargs={"renew_every": 0.05})
        for stop, election in zip(stops, elections, strict=True)
    ]
    monkeypatch.setattr(run_beat, "BeatProcess", Recorded)
    try:
        for thread in threads:
            thread.start()
        eventually(lambda: len(processes) == 2 and any(p.alive() for p in processes), "a beat process")
        time.sleep(0.5)
        assert sum(p.alive() for p in processes) == 1
        leader = next(i for i, p in enumerate(processes) if p.alive())
        child = processes[leader].process
        assert heartbeat.last_seen("beat", use_cache=False) is not None  # the standby keeps it fresh
        stops[leader].set()
        threads[leader].join(timeout=20)
        assert child.poll() is not None  # beat stopped with its leader
        eventually(lambda: processes[1 - leader].alive(), "the standby's beat")
        lease = gw.Gateway(simulated_cluster.api_client).get("Lease", NAMESPACE, run_beat.LEASE_NAME)
        assert lease["spec"]["holderIdentity"] == ("first", "second")[1 - leader]
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert not any(p.alive() for p in processes)


def test_a_beat_that_ignores_sigterm_is_killed(monkeypatch):
    monkeypatch.setattr(run_beat, "STOP_TIMEOUT_SECONDS", 0.5)
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    beat = run_beat.BeatProcess(stubborn)
    beat.start()
    time.sleep(0.5)
    beat.halt()
    assert not beat.alive()


def test_the_beat_command_is_celery_beat_with_the_schedule_file():
    command = run_beat.beat_command("/app/var/celerybeat-schedule")
    assert command[1:6] == ["-m", "celery", "-A", "coderadmin", "beat"]
    assert command[-2:] == ["--schedule", "/app/var/celerybeat-schedule"]


@pytest.mark.django_db
def test_the_command_elects_in_the_environments_namespace(monkeypatch):
    seen = {}

    def fake_run(stop, election, command):
        seen.update(
            namespace=election.namespace, name=election.name, identity=election.identity, command=command
        )

    monkeypatch.setattr(run_beat, "run", fake_run)
    monkeypatch.setattr(run_beat.gw, "Gateway", lambda: None)  # no cluster configured in tests
    call_command("run_beat", "--identity", "me", "--schedule", str(Path("/tmp/schedule")))
    assert seen["name"] == "coderadmin-beat"
    assert seen["identity"] == "me"
    assert seen["namespace"] == run_beat.InfrastructureSettings.load().environments_namespace
    assert seen["command"][-1] == "/tmp/schedule"
