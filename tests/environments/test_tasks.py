"""Celery tasks with a real worker: retries with backoff on transient API errors only."""

from __future__ import annotations

import pytest

from environments import tasks
from environments.states import State
from infrastructure import gateway as gw
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user

PLAIN = "ghcr.io/coderadmin/example-plain"


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        yield handle


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(tasks, "BACKOFF_BASE_SECONDS", 0.05)
    monkeypatch.setattr(tasks, "BACKOFF_MAX_SECONDS", 0.2)


@pytest.mark.parametrize("retries", range(12))
def test_retry_delay_grows_with_jitter_and_is_capped(retries):
    ceiling = min(tasks.BACKOFF_MAX_SECONDS, tasks.BACKOFF_BASE_SECONDS * 2**retries)
    delays = {tasks.retry_delay(retries) for _ in range(20)}
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(delays) > 1


def test_retry_delay_honours_retry_after():
    assert tasks.retry_delay(0, retry_after=7) == 7
    assert tasks.retry_delay(10, retry_after=1) >= tasks.BACKOFF_MAX_SECONDS / 2


def test_tasks_acknowledge_late_and_retry_a_bounded_number_of_times():
    for task in (tasks.build_environment, tasks.stop_environment, tasks.delete_environment):
        assert task.acks_late is True
        assert task.max_retries == tasks.MAX_RETRIES


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["500", "429", "drop"])
def test_a_transient_error_is_retried_until_the_build_succeeds(demo, fast_backoff, fault):
    cs.configure()
    demo.cluster.faults.add("create", r"/pods", count=2, kind=fault, retry_after=0)
    with cs.sqlite_waits_for_locks(), cs.celery_worker():
        env = cs.create(make_user(), cs.image(PLAIN))
        cs.wait_state(env, State.BUILDING)
    assert not demo.cluster.faults.pending()


@pytest.mark.django_db(transaction=True)
def test_an_api_that_stays_unavailable_turns_the_environment_error(demo, fast_backoff, monkeypatch):
    monkeypatch.setattr(tasks.build_environment, "max_retries", 2)
    cs.configure()
    demo.cluster.faults.add("create", r"/persistentvolumeclaims", count=3)
    with cs.sqlite_waits_for_locks(), cs.celery_worker():
        env = cs.create(make_user(), cs.image(PLAIN))
        env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("the Kubernetes API stayed unavailable: ")


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_not_retried(demo, monkeypatch):
    attempts: list[int] = []
    original = gw.Gateway.create

    def counting(self, obj, **kwargs):
        if obj["kind"] == "Pod":
            attempts.append(1)
        return original(self, obj, **kwargs)

    monkeypatch.setattr(gw.Gateway, "create", counting)
    cs.configure()
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": cs.NAMESPACE},
    }
    gw.Gateway(demo.api_client).create({**quota, "spec": {"hard": {"pods": "0"}}})
    with cs.sqlite_waits_for_locks(), cs.celery_worker():
        env = cs.create(make_user(), cs.image(PLAIN))
        env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("the namespace quota is exhausted")
    assert len(attempts) == 1


@pytest.mark.django_db
def test_requeue_stuck_picks_transitional_environments_that_sat_too_long(monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from environments import recovery
    from environments.models import Environment
    from tests.environments.factories import EnvironmentFactory

    sent: list[tuple[str, int, int]] = []
    for name in ("build_environment", "stop_environment", "delete_environment"):
        monkeypatch.setattr(
            getattr(tasks, name), "delay", lambda pk, gen, _n=name: sent.append((_n, pk, gen))
        )
    long_ago = timezone.now() - timedelta(minutes=10)
    rows = {
        state: EnvironmentFactory(state=state, generation=5)
        for state in (
            State.CREATING,
            State.TURNING_OFF,
            State.DELETING,
            State.RUNNING,
            State.OFF,
            State.ERROR,
        )
    }
    slow_build = EnvironmentFactory(state=State.BUILDING, generation=5, build_started_at=long_ago)
    young_build = EnvironmentFactory(state=State.BUILDING, generation=5, build_started_at=timezone.now())
    Environment.objects.exclude(pk=young_build.pk).update(updated_at=long_ago)
    assert recovery.requeue_stuck() == 4
    assert sorted(sent) == sorted(
        [
            ("build_environment", rows[State.CREATING].pk, 5),
            ("stop_environment", rows[State.TURNING_OFF].pk, 5),
            ("delete_environment", rows[State.DELETING].pk, 5),
            ("build_environment", slow_build.pk, 5),
        ]
    )
