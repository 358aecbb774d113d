"""The cluster watcher: pod assessment, events, leader election, and surviving API trouble."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from environments import provisioner, tasks
from environments.models import Environment, Image
from environments.services import PodState
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import watcher as watcher_module
from infrastructure.leader import LeaderElection
from infrastructure.watcher import Assessment, Watcher, assess_pod
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user

PLAIN = "ghcr.io/coderadmin/example-plain"


@pytest.fixture(autouse=True)
def no_enqueue(monkeypatch):
    """The watcher's service calls may enqueue work; no worker runs in these tests."""
    for name in ("build_environment", "stop_environment", "delete_environment"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)


def pod(phase="Pending", *, container="workspace", state=None, ready=False, deleting=False, **extra):
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if state is not None:
        status["containerStatuses"] = [{"name": container, "state": state, **extra}]
    metadata = {"name": "alice-web", "uid": "u1"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {"nodeName": "n1", "containers": [{"name": container, "image": "registry.example/app:1"}]}
    return {"metadata": metadata, "spec": spec, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod(), Assessment(PodState.PENDING, "", "n1")),
        (pod("Running", state={"running": {}}), Assessment(PodState.PENDING, "", "n1")),
        (pod("Running", state={"running": {}}, ready=True), Assessment(PodState.RUNNING, "", "n1")),
        (
            pod(
                "Failed",
                container="supervisor",
                state={"terminated": {"exitCode": 1, "message": "no user\n"}},
            ),
            Assessment(PodState.FAILED, "no user", "n1"),
        ),
        (
            pod("Failed", state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            Assessment(
                PodState.FAILED, "the environment's main process exited with code 137 (OOMKilled)", "n1"
            ),
        ),
        (
            pod(state={"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
            Assessment(PodState.FAILED, "image registry.example/app:1 could not be pulled: not found", "n1"),
        ),
        (
            pod(container="supervisor", state={"waiting": {"reason": "ImagePullBackOff", "message": "x"}}),
            Assessment(
                PodState.FAILED, "the supervisor image registry.example/app:1 could not be pulled: x", "n1"
            ),
        ),
        (
            pod(state={"waiting": {"reason": "InvalidImageName", "message": "bad"}}),
            Assessment(
                PodState.FAILED, "image registry.example/app:1 is not a valid image reference: bad", "n1"
            ),
        ),
        (
            pod(
                state={"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s" not found'}}
            ),
            Assessment(PodState.FAILED, 'the container could not be configured: secret "s" not found', "n1"),
        ),
        (
            pod(
                "Running",
                state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                lastState={"terminated": {"exitCode": 1, "message": "fatal: no config"}},
            ),
            Assessment(PodState.FAILED, "the environment keeps crashing: fatal: no config", "n1"),
        ),
        (
            pod("Unknown"),
            Assessment(PodState.UNKNOWN, "the node running the environment stopped reporting", "n1"),
        ),
        (pod("Succeeded"), Assessment(PodState.FAILED, "the environment's main process exited", "n1")),
        (pod("Running", ready=True, deleting=True), None),
    ],
)
def test_assess_pod(obj, expected):
    assert assess_pod(obj) == expected


def make_env(state: State, owner: str = "alice", **extra) -> Environment:
    cs.configure()
    img = Image.objects.filter(repository=PLAIN).first() or cs.image(PLAIN)
    env = cs.create(make_user(owner), img)
    Environment.objects.filter(pk=env.pk).update(state=state, **extra)
    return Environment.objects.get(pk=env.pk)


@pytest.fixture
def offline_watcher(tmp_path):
    """A watcher whose handlers are called directly (no cluster needed for these)."""
    return Watcher(object(), namespace=cs.NAMESPACE, identity="t", heartbeat_path=tmp_path / "hb")


def event(reason, message, *, name="alice-web", uid="e1", when=None, type_="Warning"):
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": f"{name}.1", "uid": uid},
        "involvedObject": {"kind": "Pod", "name": name},
        "reason": reason,
        "message": message,
        "type": type_,
        "lastTimestamp": stamp,
    }


@pytest.mark.django_db
def test_failed_scheduling_is_matched_by_the_stored_pod_name(offline_watcher):
    env = make_env(State.BUILDING, build_started_at=timezone.now() - timedelta(seconds=5))
    offline_watcher._cluster_event(event("FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu."))
    env.refresh_from_db()
    assert (env.state, env.status_reason) == (
        State.ERROR,
        "no node can run it: 0/3 nodes are available: 3 Insufficient cpu.",
    )


@pytest.mark.django_db
def test_transient_conditions_are_not_failures(offline_watcher):
    env = make_env(State.BUILDING, build_started_at=timezone.now() - timedelta(seconds=5))
    offline_watcher._cluster_event(
        event(
            "FailedScheduling", "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        )
    )
    offline_watcher._cluster_event(event("FailedMount", 'secret "alice-web-registry" not found', uid="e2"))
    offline_watcher._cluster_event(event("Unhealthy", "Readiness probe failed", uid="e3"))
    env.refresh_from_db()
    assert env.state == State.BUILDING
    assert list(env.events.filter(source="cluster").values_list("message", flat=True)) == [
        "FailedScheduling: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        'FailedMount: secret "alice-web-registry" not found',
    ]


@pytest.mark.django_db
def test_a_mount_failing_past_the_grace_is_a_failure(offline_watcher):
    env = make_env(State.BUILDING, build_started_at=timezone.now() - timedelta(minutes=5))
    offline_watcher.pods["alice-web"] = watcher_module._PodInfo(
        env.pk, env.generation, "u1", datetime.now(UTC) - timedelta(minutes=2)
    )
    offline_watcher._cluster_event(event("FailedMount", 'secret "x" not found'))
    env.refresh_from_db()
    assert (env.state, env.status_reason) == (
        State.ERROR,
        'a volume could not be mounted: secret "x" not found',
    )


@pytest.mark.django_db
def test_events_of_an_earlier_build_or_pod_are_ignored(offline_watcher):
    env = make_env(State.BUILDING, build_started_at=timezone.now())
    old = datetime.now(UTC) - timedelta(minutes=10)
    offline_watcher._cluster_event(event("FailedScheduling", "0/3 nodes are available", when=old))
    offline_watcher.pods["alice-web"] = watcher_module._PodInfo(env.pk, env.generation, "new-uid", None)
    stale = event("FailedScheduling", "0/3 nodes are available", uid="e2")
    stale["involvedObject"]["uid"] = "old-uid"
    offline_watcher._cluster_event(stale)
    env.refresh_from_db()
    assert env.state == State.BUILDING


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("before", "after"),
    [(State.RUNNING, State.ERROR), (State.TURNING_OFF, State.OFF), (State.BUILDING, State.BUILDING)],
)
def test_a_relist_without_the_pod_settles_what_was_missed(offline_watcher, before, after):
    env = make_env(before)
    offline_watcher._synced(set())
    env.refresh_from_db()
    assert env.state == after


@pytest.mark.django_db
def test_the_build_timeout_is_the_last_resort(offline_watcher):
    env = make_env(State.BUILDING, build_started_at=timezone.now() - timedelta(seconds=901))
    fresh = make_env(State.BUILDING, owner="bob", build_started_at=timezone.now())
    offline_watcher._fail_timed_out_builds()
    env.refresh_from_db()
    fresh.refresh_from_db()
    assert (env.state, env.status_reason) == (State.ERROR, "the build did not finish within 15 minutes")
    assert fresh.state == State.BUILDING


# --------------------------------------------------------------------------- against the cluster


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        yield handle


def lease(gateway):
    return gateway.get("Lease", cs.NAMESPACE, watcher_module.LEASE_NAME)


@pytest.mark.django_db
def test_leader_election_one_holder_expiry_and_release(demo):
    gateway = gw.Gateway(demo.api_client)
    first = LeaderElection(gateway, cs.NAMESPACE, "first", watcher_module.LEASE_NAME)
    second = LeaderElection(gateway, cs.NAMESPACE, "second", watcher_module.LEASE_NAME)
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert first.try_acquire() is True  # renewal
    current = lease(gateway)
    current["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"  # the holder died long ago
    gateway.replace(current)
    assert second.try_acquire() is True
    taken = lease(gateway)["spec"]
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("second", 1)
    second.release()
    assert first.try_acquire() is True


@pytest.mark.django_db
def test_a_stale_lease_write_loses_the_race(demo):
    gateway = gw.Gateway(demo.api_client)
    LeaderElection(gateway, cs.NAMESPACE, "first", watcher_module.LEASE_NAME).try_acquire()
    stale = lease(gateway)
    LeaderElection(gateway, cs.NAMESPACE, "first", watcher_module.LEASE_NAME).try_acquire()
    stale["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(gw.Conflict):
        gateway.replace(stale)


@pytest.mark.django_db(transaction=True)
def test_only_one_of_two_watchers_acts_and_the_heartbeat_is_written(demo, tmp_path):
    with (
        cs.sqlite_waits_for_locks(),
        cs.running_watcher(gw.Gateway(demo.api_client), tmp_path, identity="a") as a,
        cs.running_watcher(gw.Gateway(demo.api_client), tmp_path / "b", identity="b") as b,
    ):
        cs.eventually(lambda: a.leading.is_set() or b.leading.is_set(), what="a leader")
        assert not (a.leading.is_set() and b.leading.is_set())
        assert (tmp_path / "heartbeat").read_text().strip().isdigit()
        assert (tmp_path / "b" / "heartbeat").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trouble", ["expire", "restart", "close"])
def test_the_watcher_survives_410_restarts_and_closed_watches(demo, tmp_path, trouble):
    gateway = gw.Gateway(demo.api_client)
    with cs.sqlite_waits_for_locks(), cs.running_watcher(gateway, tmp_path) as watcher:
        cs.eventually(watcher.leading.is_set, what="leading")
        cs.configure()
        first = cs.create(make_user("alice"), cs.image(PLAIN), name="one")
        provisioner.build(first.pk, first.generation, gateway)
        cs.wait_state(first, State.RUNNING)
        {
            "expire": demo.cluster.faults.expire_resource_versions,
            "restart": demo.cluster.restart,
            "close": demo.cluster.faults.close_watches,
        }[trouble]()
        second = cs.create(first.owner, first.image, name="two")
        provisioner.build(second.pk, second.generation, gateway)
        cs.wait_state(second, State.RUNNING, timeout=40)


@pytest.mark.django_db(transaction=True)
def test_the_run_loop_stops_cleanly_and_releases_the_lease(demo, tmp_path):
    gateway = gw.Gateway(demo.api_client)
    stop = threading.Event()
    watcher = Watcher(
        gateway, namespace=cs.NAMESPACE, identity="solo", heartbeat_path=tmp_path / "hb", watch_timeout=2
    )
    thread = threading.Thread(target=watcher.run, args=(stop,))
    with cs.sqlite_waits_for_locks():
        thread.start()
        cs.eventually(watcher.leading.is_set, what="leading")
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert lease(gateway)["spec"].get("holderIdentity") in (None, "")


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_cluster_turns_environments_unknown_until_it_is_back(demo, tmp_path):
    gateway = gw.Gateway(demo.api_client)
    cs.configure()
    owner = make_user("alice")
    img = cs.image(PLAIN)
    running = cs.create(owner, img, name="up")
    provisioner.build(running.pk, running.generation, gateway)
    stopped = cs.create(owner, img, name="down")
    Environment.objects.filter(pk=stopped.pk).update(state=State.OFF)
    with cs.sqlite_waits_for_locks(), cs.running_watcher(gateway, tmp_path, unreachable_after=0.5) as watcher:
        cs.wait_state(running, State.RUNNING)
        demo.cluster.stop()
        env = cs.wait_state(running, State.UNKNOWN, timeout=40)
        assert env.status_reason.startswith("the cluster cannot be reached: ")
        assert cs.state_of(stopped) == State.OFF
        demo.cluster.start()
        cs.eventually(watcher.leading.is_set, timeout=40, what="leading again")
        cs.wait_state(running, State.RUNNING, timeout=40)


def test_the_management_command_runs_the_watcher_with_its_options(monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    from infrastructure.management.commands import watch_cluster

    seen = {}

    class FakeWatcher:
        namespace = "ns"

        def __init__(self, **options):
            seen.update(options)
            self.identity = options["identity"]

        def run(self, stop):
            seen["stop"] = stop

    monkeypatch.setattr(watch_cluster, "Watcher", FakeWatcher)
    before = signal.getsignal(signal.SIGTERM)
    out = StringIO()
    call_command("watch_cluster", "--identity", "w1", "--relist-seconds", "30", stdout=out)
    assert seen["identity"] == "w1"
    assert seen["relist_seconds"] == 30.0
    assert not seen["stop"].is_set()
    assert out.getvalue() == "watching namespace ns as w1\n"
    assert signal.getsignal(signal.SIGTERM) is before
