"""The task broker is down when a member creates an environment: the environment is saved and the
member sees it pending (not an error page); once the broker is back, the reconciler's sweep
re-enqueues the build and the environment is built once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from coderadmin.roles import Role
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import reconciler
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user
from tests.faults.conftest import PODS, celery_broker, celery_worker, pods_of, record_requests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLOSED_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there


def member() -> object:
    user = make_user("mara")
    user.groups.add(Group.objects.get_or_create(name=Role.MEMBER.value)[0])
    return user


def two_minutes_pass(env: Environment) -> None:
    """What the reconciler waits for before it calls a task lost."""
    Environment.objects.filter(pk=env.pk).update(updated_at=timezone.now() - timedelta(minutes=3))


def test_create_with_the_broker_down_is_saved_pending_and_built_once_the_broker_is_back(client, tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        requests = record_requests(handle)
        gateway = gw.Gateway(handle.api_client)
        with cs.sqlite_waits_for_locks(), cs.running_watcher(gw.Gateway(handle.api_client), tmp_path):
            cs.configure()
            image = cs.image("ghcr.io/coderadmin/example-plain")
            client.force_login(member())
            form = {
                "name": "offline",
                "image_tag": str(image.tags.get().pk),
                "cpu_millicores": 500,
                "memory_mib": 1024,
                "disk_gib": 5,
                "gpu_count": 0,
            }
            with celery_broker(CLOSED_REDIS):
                response = client.post("/environments/new/", form)
                assert response.status_code == 302
                env = Environment.objects.get(name="offline")
                assert response["Location"] == f"/environments/{env.pk}/"
                page = client.get(response["Location"])
                assert page.status_code == 200
                assert "Creating" in page.content.decode()

                two_minutes_pass(env)
                report = reconciler.reconcile(gateway)
                assert any("broker is unreachable" in error for error in report.errors), report.errors
                assert cs.state_of(env) == State.CREATING
                assert requests.matching("POST", PODS) == []

            with celery_worker():
                two_minutes_pass(env)
                assert reconciler.reconcile(gateway).requeued == 1
                env = cs.wait_state(env, State.RUNNING)
                assert reconciler.reconcile(gateway).requeued == 0
            assert len(pods_of(gateway, env)) == 1
            assert len(requests.matching("POST", PODS)) == 1
            assert env.events.filter(message__startswith="Environment is running").count() == 1
            cs.assert_no_leaks(gateway)
