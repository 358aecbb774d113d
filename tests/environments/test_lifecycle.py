"""Whole journeys: services → real Celery worker → provisioner → simulated cluster (HTTP) → watcher.

Each scenario ends by checking that listing the cluster by our labels shows exactly the objects the
database says should exist.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from environments import manifests, recovery, services, tasks
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from infrastructure.models import CvmBackend, InfrastructureSettings
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SYSTEMD = "ghcr.io/coderadmin/example-systemd"
PLAIN = "ghcr.io/coderadmin/example-plain"


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        yield handle


@pytest.fixture
def sysbox(tmp_path):
    with cs.running_profile("sysbox-nodes", tmp_path, scale=0.002) as handle:
        yield handle


@pytest.fixture
def stack(tmp_path):
    """``stack(handle)`` starts a real worker and the watcher on that cluster; returns a gateway."""
    from contextlib import ExitStack

    with ExitStack() as stack_:

        def start(handle):
            gateway = gw.Gateway(handle.api_client)
            stack_.enter_context(cs.sqlite_waits_for_locks())
            stack_.enter_context(cs.celery_worker())
            stack_.enter_context(cs.running_watcher(gw.Gateway(handle.api_client), tmp_path))
            return gateway

        yield start


def supervisor_lines(env: Environment) -> list[str]:
    return list(env.events.filter(source="supervisor").values_list("message", flat=True))


def test_cvm_lifecycle_on_the_supervisor_backend(demo, stack):
    gateway = stack(demo)
    cs.configure(cvm=True, backend=CvmBackend.SUPERVISOR)
    owner = make_user("alice")
    env = cs.create(owner, cs.image(SYSTEMD), cvm=True)
    env = cs.wait_state(env, State.RUNNING)
    assert env.entrypoint == "/sbin/init"
    assert env.node_name.startswith("pool-ubuntu-")
    lines = supervisor_lines(env)
    assert "starting docker daemon" in lines
    assert "entrypoint: /sbin/init" in lines
    cs.assert_no_leaks(gateway)

    services.environment_stop(env, actor=owner)
    env = cs.wait_state(env, State.OFF)
    cs.assert_no_leaks(gateway)

    services.environment_start(env, actor=owner)
    env = cs.wait_state(env, State.RUNNING)
    cs.assert_no_leaks(gateway)

    services.environment_rebuild(env, actor=owner, memory_mib=2048)
    env = cs.wait_state(env, State.RUNNING)
    pod = gateway.get("Pod", env.namespace, env.pod_name)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "2048Mi"
    cs.assert_no_leaks(gateway)

    services.environment_delete(env, actor=owner)
    cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
    cs.assert_no_leaks(gateway)


def test_cvm_lifecycle_on_the_runtimeclass_backend(sysbox, stack):
    gateway = stack(sysbox)
    cs.configure(cvm=True, backend=CvmBackend.RUNTIMECLASS)
    owner = make_user("bob")
    env = cs.create(owner, cs.image(PLAIN), cvm=True)
    env = cs.wait_state(env, State.RUNNING)
    pod = gateway.get("Pod", env.namespace, env.pod_name)
    assert pod["spec"]["runtimeClassName"] == "sysbox-runc"
    assert env.node_name.startswith("sysbox-")
    cs.eventually(lambda: Environment.objects.get(pk=env.pk).entrypoint == "keep-alive", what="entrypoint")
    cs.assert_no_leaks(gateway)

    services.environment_stop(env, actor=owner)
    env = cs.wait_state(env, State.OFF)
    services.environment_start(env, actor=owner)
    env = cs.wait_state(env, State.RUNNING)
    services.environment_delete(env, actor=owner)
    cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
    cs.assert_no_leaks(gateway)


def test_standard_lifecycle(demo, stack):
    gateway = stack(demo)
    cs.configure()
    owner = make_user("carol")
    env = cs.create(owner, cs.image(PLAIN, registry_username="bot", registry_password="pw"))
    env = cs.wait_state(env, State.RUNNING)
    cs.assert_no_leaks(gateway)
    services.environment_stop(env, actor=owner)
    env = cs.wait_state(env, State.OFF)
    cs.assert_no_leaks(gateway)
    services.environment_start(env, actor=owner)
    env = cs.wait_state(env, State.RUNNING)
    cs.assert_no_leaks(gateway)
    services.environment_delete(env, actor=owner)
    cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
    cs.assert_no_leaks(gateway)


# --------------------------------------------------------------------------- fast failures


def test_cvm_with_an_unpullable_inner_image_fails_with_the_supervisors_reason(demo, stack):
    gateway = stack(demo)
    cs.configure(cvm=True)
    env = cs.create(make_user(), cs.image("registry.invalid/team/app"), cvm=True)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason == (
        "pull image registry.invalid/team/app:1: Error response from daemon: "
        'Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid: no such host: '
        "failed after 10 attempts"
    )
    assert any("attempt 1/10 failed" in line for line in supervisor_lines(env))
    cs.assert_no_leaks(gateway)


def test_cvm_whose_image_lacks_the_user_fails_with_the_supervisors_reason(demo, stack):
    stack(demo)
    cs.configure(cvm=True)
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-no-user"), cvm=True)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason == 'user "coder" does not exist in image ghcr.io/coderadmin/example-no-user:1'


def test_standard_environment_with_an_unpullable_image_fails_fast(demo, stack):
    gateway = stack(demo)
    cs.configure()
    env = cs.create(make_user(), cs.image("registry.invalid/team/app"))
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("image registry.invalid/team/app:1 could not be pulled: ")
    cs.assert_no_leaks(gateway)


def test_runtimeclass_cvm_with_an_unpullable_image_fails_fast(sysbox, stack):
    stack(sysbox)
    cs.configure(cvm=True, backend=CvmBackend.RUNTIMECLASS)
    env = cs.create(make_user(), cs.image("registry.invalid/team/app"), cvm=True)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("image registry.invalid/team/app:1 could not be pulled: ")


def test_a_crashing_standard_environment_fails_with_its_message(demo, stack):
    stack(demo)
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-crash"))
    env = cs.wait_state(env, State.ERROR)
    assert "fatal: configuration file /etc/app.conf not found" in env.status_reason


def test_no_node_fits_fails_with_the_schedulers_reason(demo, stack):
    gateway = stack(demo)
    cs.configure()
    env = cs.create(make_user(), cs.image(PLAIN), cpu_millicores=8000)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("no node can run it: 0/4 nodes are available: ")
    assert "Insufficient cpu" in env.status_reason
    cs.assert_no_leaks(gateway)


def test_a_namespace_forbidding_privileged_pods_fails_a_supervised_cvm(sysbox, stack):
    gateway = stack(sysbox)
    cs.configure(cvm=True, backend=CvmBackend.SUPERVISOR)
    env = cs.create(make_user(), cs.image(SYSTEMD), cvm=True)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason.startswith("the namespace forbids privileged pods: ")
    cs.assert_no_leaks(gateway)


# --------------------------------------------------------------------------- user actions mid-way


def slow_image() -> object:
    """An image the kubelet pulls for a while (scaled), so actions land during the build."""
    return cs.image(SYSTEMD)


def test_cancel_during_the_build(tmp_path, stack):
    with cs.running_profile("demo", tmp_path, scale=0.05) as handle:
        gateway = stack(handle)
        cs.configure(cvm=True)
        owner = make_user()
        env = cs.create(owner, slow_image(), cvm=True)
        env = cs.wait_state(env, State.BUILDING)
        services.environment_cancel(env, actor=owner)
        cs.eventually(
            lambda: gateway.get_or_none("Pod", env.namespace, env.pod_name) is None, what="pod gone"
        )
        assert cs.state_of(env) == State.OFF
        cs.assert_no_leaks(gateway)


def test_stop_during_the_build(tmp_path, stack):
    with cs.running_profile("demo", tmp_path, scale=0.05) as handle:
        gateway = stack(handle)
        cs.configure(cvm=True)
        owner = make_user()
        env = cs.create(owner, slow_image(), cvm=True)
        env = cs.wait_state(env, State.BUILDING)
        services.environment_stop(env, actor=owner)
        env = cs.wait_state(env, State.OFF)
        assert env.events.filter(message="Environment is off.").exists()
        cs.assert_no_leaks(gateway)


def test_delete_during_the_build(tmp_path, stack):
    with cs.running_profile("demo", tmp_path, scale=0.05) as handle:
        gateway = stack(handle)
        cs.configure(cvm=True)
        owner = make_user()
        env = cs.create(owner, slow_image(), cvm=True)
        env = cs.wait_state(env, State.BUILDING)
        services.environment_delete(env, actor=owner)
        cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
        cs.assert_no_leaks(gateway)


def test_rebuild_after_an_error(demo, stack):
    gateway = stack(demo)
    cs.configure()
    owner = make_user()
    img = cs.image("docker.io/team/app", tag="unpullable-1")
    img.tags.create(tag="1")
    env = cs.create(owner, img)
    env = cs.wait_state(env, State.ERROR)
    services.environment_rebuild(env, actor=owner, tag="1")
    env = cs.wait_state(env, State.RUNNING)
    assert env.status_reason == ""
    cs.assert_no_leaks(gateway)


def test_a_double_submit_makes_one_environment_and_one_pod(demo, stack):
    gateway = stack(demo)
    cs.configure()
    owner = make_user()
    img = cs.image(PLAIN)
    env = cs.create(owner, img)
    with pytest.raises(ValidationError):
        cs.create(owner, img)
    cs.wait_state(env, State.RUNNING)
    assert Environment.objects.count() == 1
    pods = gateway.list("Pod", cs.NAMESPACE, label_selector="app.kubernetes.io/managed-by=coderadmin")
    assert len(pods["items"]) == 1
    cs.assert_no_leaks(gateway)


def test_the_pod_deleted_behind_our_back_turns_error(demo, stack):
    gateway = stack(demo)
    cs.configure()
    env = cs.wait_state(cs.create(make_user(), cs.image(PLAIN)), State.RUNNING)
    gateway.delete_if_exists("Pod", env.namespace, env.pod_name, grace_period_seconds=0)
    env = cs.wait_state(env, State.ERROR)
    assert env.status_reason == "The pod disappeared: something outside coderadmin deleted it."


def test_work_lost_with_a_crashed_worker_is_recovered_by_requeueing(demo, stack, monkeypatch):
    """The worker died after its first write and its message is gone: the reconciler's call
    re-enqueues the build, which converges on the objects already there."""
    gateway = stack(demo)
    cs.configure()
    with monkeypatch.context() as patch:
        patch.setattr(tasks.build_environment, "delay", lambda *args: None)  # lost with the worker
        env = cs.create(make_user(), cs.image(PLAIN))
    env = Environment.objects.select_related("owner", "image").get(pk=env.pk)
    claim = manifests.volume_claim(env, InfrastructureSettings.load())
    gateway.create(claim)  # what the crashed worker had done
    assert cs.state_of(env) == State.CREATING
    assert recovery.requeue_stuck(older_than=timedelta(0)) == 1
    cs.wait_state(env, State.RUNNING)
    cs.assert_no_leaks(gateway)
    assert recovery.requeue_stuck(older_than=timedelta(0)) == 0  # nothing left in a transitional state


def test_a_create_makes_bounded_writes_and_no_per_environment_reads_while_building(demo, stack, monkeypatch):
    """Per standard environment built to Running: 3 writes (claim, policy, pod) by the worker; the
    watcher only lists, watches, and holds its lease (no GET of a pod, no per-pod log for standard
    pods: only CVM pods have a build log to follow)."""
    calls: list[tuple[str, str]] = []

    class SharedCounting(cs.CountingGateway):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.calls = calls

    monkeypatch.setattr(gw, "Gateway", SharedCounting)
    stack(demo)
    cs.configure()
    owner = make_user()
    img = cs.image(PLAIN)
    calls.clear()
    envs = [cs.create(owner, img, name=f"env{i}") for i in range(3)]
    for env in envs:
        cs.wait_state(env, State.RUNNING)
    writes = [call for call in calls if call[0] in {"create", "patch", "delete"}]
    assert sorted(writes) == sorted(
        [("create", "PersistentVolumeClaim"), ("create", "NetworkPolicy"), ("create", "Pod")] * 3
    )
    per_object_reads = [call for call in calls if call[0] in {"get", "log"} and call[1] != "Lease"]
    assert per_object_reads == []
    assert {call for call in calls if call[0] in {"list", "watch"}} <= {
        ("list", "Pod"),
        ("list", "Event"),
        ("watch", "Pod"),
        ("watch", "Event"),
    }
