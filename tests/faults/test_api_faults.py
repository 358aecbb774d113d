"""Kubernetes API faults during create, stop, rebuild and delete: the tasks retry, the environment
ends in the right state, the cluster holds exactly what the database says (no orphans), and there is
never more than one pod per environment."""

from __future__ import annotations

import itertools

import pytest

from environments import services
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user
from tests.faults.conftest import CLAIM, POD, PODS, Stack, pods_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PLAIN = "ghcr.io/coderadmin/example-plain"


def settled(stack: Stack, env: Environment, pods: int) -> None:
    assert len(pods_of(stack.gateway, env)) == pods
    cs.assert_no_leaks(stack.gateway)


@pytest.mark.parametrize("kind", ["500", "429", "drop", "delay"])
def test_every_action_is_retried_through_api_faults(stack, monkeypatch, kind):
    """``delay``: the server answers after the client's read timeout (shortened to 1 s here) and
    still acts, so the retry meets what the timed-out request did."""
    s = stack()
    if kind == "delay":
        monkeypatch.setattr(gw.Gateway.__init__, "__defaults__", (None, (2.0, 1.0)))
    count = 1 if kind == "delay" else 2
    options = {"kind": kind, "delay": 2.5}
    cs.configure()
    owner = make_user()

    create = s.faults.add("create", PODS, count=count, **options)
    env = cs.wait_state(cs.create(owner, cs.image(PLAIN)), State.RUNNING, timeout=30)
    assert create.hits == count
    settled(s, env, pods=1)

    stop = s.faults.add("delete", POD, count=count, **options)
    services.environment_stop(env, actor=owner)
    env = cs.wait_state(env, State.OFF, timeout=30)
    assert stop.hits == count
    settled(s, env, pods=0)

    services.environment_start(env, actor=owner)
    env = cs.wait_state(env, State.RUNNING, timeout=30)
    old_uid = pods_of(s.gateway, env)[0]["metadata"]["uid"]
    replace_old = s.faults.add("delete", POD, count=1, **options)
    create_new = s.faults.add("create", PODS, count=1, **options)
    services.environment_rebuild(env, actor=owner)
    cs.eventually(lambda: create_new.hits == 1, timeout=30, what="the rebuild's pod create")
    env = cs.wait_state(env, State.RUNNING, timeout=30)
    assert replace_old.hits == 1
    (pod,) = pods_of(s.gateway, env)
    assert pod["metadata"]["uid"] != old_uid
    settled(s, env, pods=1)

    delete = s.faults.add("delete", CLAIM, count=count, **options)
    services.environment_delete(env, actor=owner)
    cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), timeout=30, what="row deleted")
    assert delete.hits == count
    cs.eventually(lambda: cs.cluster_objects(s.gateway) == set(), what="nothing left in the cluster")


def test_429_retries_wait_for_retry_after(stack):
    s = stack()
    cs.configure()
    s.faults.add("create", PODS, count=2, kind="429", retry_after=2)
    env = cs.wait_state(cs.create(make_user(), cs.image(PLAIN)), State.RUNNING, timeout=30)
    attempts = s.requests.matching("POST", PODS)
    assert [r.fault for r in attempts] == ["429", "429", None]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 1.9 for gap in gaps), gaps
    settled(s, env, pods=1)
