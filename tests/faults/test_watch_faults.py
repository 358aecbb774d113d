"""Watch streams cut and resourceVersions expired (410 Gone): the watcher re-lists and no change of
state is missed, including changes made while it was not watching."""

from __future__ import annotations

import threading

import pytest

from environments import services
from environments.models import Environment
from environments.states import State
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user
from tests.faults.conftest import PODS, Stack, pods_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PLAIN = "ghcr.io/coderadmin/example-plain"
SYSTEMD = "ghcr.io/coderadmin/example-systemd"


def cut_watches_until(
    stack: Stack, done: threading.Event, cuts: list[int], every: float = 0.2
) -> threading.Thread:
    """Close every open watch stream again and again, as a flaky load balancer does."""

    def loop() -> None:
        while not done.wait(every):
            stack.faults.close_watches()
            cuts.append(1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_builds_stops_and_deletes_complete_while_streams_keep_being_cut(stack):
    s = stack(scale=0.05)
    cs.configure(cvm=True)
    owner = make_user()
    done, cuts = threading.Event(), []
    cutter = cut_watches_until(s, done, cuts)
    try:
        cvm = cs.create(owner, cs.image(SYSTEMD), name="cvm", cvm=True)
        image = cs.image(PLAIN)
        plain = cs.create(owner, image, name="plain")
        doomed = cs.create(owner, image, name="doomed")
        cvm, plain, doomed = (cs.wait_state(env, State.RUNNING, timeout=40) for env in (cvm, plain, doomed))
        assert cvm.entrypoint == "/sbin/init"
        services.environment_stop(plain, actor=owner)
        services.environment_delete(doomed, actor=owner)
        cs.wait_state(plain, State.OFF, timeout=30)
        cs.eventually(
            lambda: not Environment.objects.filter(pk=doomed.pk).exists(), timeout=30, what="deleted"
        )
    finally:
        done.set()
        cutter.join()
    watches = [r for r in s.requests.matching("GET", PODS) if "watch=" in r.path]
    assert len(cuts) >= 5
    assert len(watches) >= 5, "the streams were not resumed after the cuts"
    cs.assert_no_leaks(s.gateway)


def hold_next_pod_watch(stack: Stack) -> object:
    """Cut the pod watch and keep its resume waiting at the server while the test changes things."""
    held = stack.faults.add("watch", PODS, count=1, kind="delay", delay=3.0)
    stack.faults.close_watches()
    cs.eventually(lambda: held.hits == 1, what="the watcher's resumed watch")
    return held


def relisted_since(stack: Stack, since: float) -> bool:
    return any(r.at > since and "watch=" not in r.path for r in stack.requests.matching("GET", PODS))


def test_a_pod_deleted_while_the_watch_was_down_and_history_expired_is_noticed(stack):
    s = stack()
    cs.configure()
    env = cs.wait_state(cs.create(make_user(), cs.image(PLAIN)), State.RUNNING)
    hold_next_pod_watch(s)
    since = s.requests.entries[-1].at
    s.gateway.delete_if_exists("Pod", env.namespace, env.pod_name, grace_period_seconds=0)
    s.faults.expire_resource_versions()  # the held watch resumes from a version the server forgot: 410
    env = cs.wait_state(env, State.ERROR, timeout=20)
    assert env.status_reason == "The pod disappeared: something outside coderadmin deleted it."
    assert relisted_since(s, since), "the watcher did not re-list after 410 Gone"


def test_a_stop_finished_while_the_watch_was_down_and_history_expired_ends_off(stack):
    s = stack()
    cs.configure()
    owner = make_user()
    env = cs.wait_state(cs.create(owner, cs.image(PLAIN)), State.RUNNING)
    hold_next_pod_watch(s)
    since = s.requests.entries[-1].at
    services.environment_stop(env, actor=owner)
    cs.eventually(lambda: not pods_of(s.gateway, env), what="pod removed by the stop")
    s.faults.expire_resource_versions()
    cs.wait_state(env, State.OFF, timeout=20)
    assert relisted_since(s, since)
    cs.assert_no_leaks(s.gateway)


def test_a_build_that_became_ready_while_the_watch_was_down_turns_running(stack):
    s = stack(scale=0.05)
    cs.configure()
    env = cs.wait_state(cs.create(make_user(), cs.image(PLAIN)), State.BUILDING)
    hold_next_pod_watch(s)
    since = s.requests.entries[-1].at
    cs.eventually(
        lambda: (pods_of(s.gateway, env) or [{}])[0].get("status", {}).get("phase") == "Running",
        what="pod running",
    )
    assert cs.state_of(env) == State.BUILDING  # nobody told the product yet
    s.faults.expire_resource_versions()
    cs.wait_state(env, State.RUNNING, timeout=20)
    assert relisted_since(s, since)
