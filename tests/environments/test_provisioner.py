"""The provisioner against the simulated cluster over HTTP (official client, product gateway)."""

from __future__ import annotations

import pytest

from environments import provisioner, services
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import labels
from infrastructure.models import CvmBackend
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.0005) as handle:
        yield handle


@pytest.fixture
def gateway(demo):
    return cs.CountingGateway(demo.api_client)


@pytest.fixture(autouse=True)
def no_enqueue(monkeypatch):
    """These tests call the provisioner directly: tasks are not sent anywhere."""
    from environments import tasks

    for name in ("build_environment", "stop_environment", "delete_environment"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)


def load(env: Environment) -> Environment:
    return Environment.objects.select_related("owner", "image").get(pk=env.pk)


def pod_of(gateway: gw.Gateway, env: Environment) -> dict | None:
    return gateway.get_or_none("Pod", env.namespace, env.pod_name)


def test_build_of_a_public_image_makes_three_writes_and_no_reads(gateway):
    cs.configure()
    env = cs.create(make_user("alice"), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    assert gateway.calls == [
        ("create", "PersistentVolumeClaim"),
        ("create", "NetworkPolicy"),
        ("create", "Pod"),
    ]
    assert load(env).state == State.BUILDING
    pod = pod_of(gateway, env)
    assert pod["metadata"]["annotations"][labels.ANNOTATION_GENERATION] == "1"
    assert cs.cluster_objects(gateway) == {
        ("Pod", "alice-web"),
        ("PersistentVolumeClaim", "alice-web-data"),
        ("NetworkPolicy", "alice-web"),
    }


def test_a_private_image_gets_a_pull_secret_owned_by_the_pod(gateway):
    cs.configure()
    img = cs.image("ghcr.io/coderadmin/example-plain", registry_username="bot", registry_password="s3cret")
    env = cs.create(make_user("alice"), img)
    provisioner.build(env.pk, env.generation, gateway)
    assert gateway.writes() == [
        ("create", "PersistentVolumeClaim"),
        ("create", "Secret"),
        ("create", "NetworkPolicy"),
        ("create", "Pod"),
        ("patch", "Secret"),
    ]
    pod = pod_of(gateway, env)
    secret = gateway.get("Secret", env.namespace, env.registry_secret_name)
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Pod", env.pod_name, pod["metadata"]["uid"])


def test_build_is_idempotent(gateway):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    uid = pod_of(gateway, env)["metadata"]["uid"]
    before = cs.cluster_objects(gateway)
    provisioner.build(env.pk, env.generation, gateway)  # a redelivered task
    assert pod_of(gateway, env)["metadata"]["uid"] == uid
    assert cs.cluster_objects(gateway) == before
    assert load(env).events.filter(message="Pod created; building.").count() == 1


def test_a_stale_task_does_nothing(gateway):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    services.environment_cancel(env, actor=env.owner)
    provisioner.build(env.pk, 1, gateway)
    assert gateway.calls == []
    assert load(env).state == State.OFF


def test_the_namespace_is_created_when_missing(gateway):
    cs.configure(environments_namespace="brand-new")
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    assert gateway.get_or_none("Namespace", None, "brand-new") is not None
    assert pod_of(gateway, env) is not None


def test_stop_deletes_the_pod_and_keeps_the_claim(gateway):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    env = services.environment_stop(load(env), actor=env.owner)
    provisioner.stop(env.pk, env.generation, gateway)
    cs.eventually(lambda: pod_of(gateway, env) is None, what="pod gone")
    assert gateway.get_or_none("PersistentVolumeClaim", env.namespace, env.pvc_name) is not None
    assert load(env).state == State.TURNING_OFF  # the watcher reports the pod gone
    provisioner.stop(env.pk, env.generation, gateway)  # or a re-run finds it gone
    assert load(env).state == State.OFF
    cs.assert_no_leaks(gateway)


def test_rebuild_replaces_the_pod_after_the_old_one_is_gone(gateway):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    old_uid = pod_of(gateway, env)["metadata"]["uid"]
    Environment.objects.filter(pk=env.pk).update(state=State.RUNNING)
    env = services.environment_rebuild(load(env), actor=env.owner, cpu_millicores=750)
    provisioner.build(env.pk, env.generation, gateway)
    pod = pod_of(gateway, env)
    assert pod["metadata"]["uid"] != old_uid
    assert pod["metadata"]["annotations"][labels.ANNOTATION_GENERATION] == str(env.generation)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "750m"
    assert load(env).state == State.BUILDING


def test_delete_removes_every_object_then_the_row(gateway):
    cs.configure()
    img = cs.image("ghcr.io/coderadmin/example-plain", registry_username="bot", registry_password="pw")
    env = cs.create(make_user(), img)
    provisioner.build(env.pk, env.generation, gateway)
    env = services.environment_delete(load(env), actor=env.owner)
    provisioner.delete(env.pk, env.generation, gateway)
    cs.eventually(
        lambda: not cs.cluster_objects(gateway) and pod_of(gateway, env) is None, what="objects gone"
    )
    provisioner.delete(env.pk, env.generation, gateway)  # run again once the pod is gone
    assert not Environment.objects.filter(pk=env.pk).exists()


def test_quota_refusal_turns_error_at_once(gateway):
    cs.configure()
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": cs.NAMESPACE},
        "spec": {"hard": {"pods": "0"}},
    }
    gateway.create(quota)
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    provisioner.build(env.pk, env.generation, gateway)
    env = load(env)
    assert env.state == State.ERROR
    assert env.status_reason.startswith("the namespace quota is exhausted: ")
    assert "exceeded quota" in env.status_reason


def test_pod_security_refusal_of_a_privileged_cvm(tmp_path):
    with cs.running_profile("sysbox-nodes", tmp_path) as handle:
        gateway = gw.Gateway(handle.api_client)
        cs.configure(cvm=True, backend=CvmBackend.SUPERVISOR)
        env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-systemd"), cvm=True)
        provisioner.build(env.pk, env.generation, gateway)
        env = load(env)
        assert env.state == State.ERROR
        assert env.status_reason.startswith("the namespace forbids privileged pods: ")
        assert "violates PodSecurity" in env.status_reason


def test_transient_errors_propagate_for_the_task_to_retry(demo, gateway):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    demo.cluster.faults.add("create", r"/pods", count=1)
    with pytest.raises(gw.Unavailable):
        provisioner.build(env.pk, env.generation, gateway)
    assert load(env).state == State.CREATING
    provisioner.build(env.pk, env.generation, gateway)  # the retry converges
    assert load(env).state == State.BUILDING


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (gw.QuotaExceeded("exceeded quota: q"), "Pod", "the namespace quota is exhausted: exceeded quota: q"),
        (gw.PodSecurityDenied("privileged"), "Pod", "the namespace forbids privileged pods: privileged"),
        (
            gw.PodSecurityDenied("runAsNonRoot != true"),
            "Pod",
            "the namespace's Pod Security policy refuses the pod: runAsNonRoot != true",
        ),
        (gw.Invalid("spec.x: bad"), "Pod", "the cluster refused the Pod: spec.x: bad"),
        (
            gw.Unauthorized("token expired"),
            "Pod",
            "the cluster rejected coderadmin's credentials: token expired",
        ),
        (gw.Forbidden("no rbac"), "Secret", "coderadmin is not allowed to create the Secret: no rbac"),
        (gw.Unavailable("503"), "Pod", None),
        (gw.Conflict("stale"), "Pod", None),
    ],
)
def test_refusal_reasons(error, kind, reason):
    assert provisioner.refusal_reason(error, kind) == reason


def test_runtimeclass_pods_follow_the_runtime_of_the_sysbox_nodes(tmp_path):
    with cs.running_profile("sysbox-nodes", tmp_path) as handle:
        gateway = gw.Gateway(handle.api_client)
        assert provisioner.node_runtime(gateway) == "containerd"  # mixed: containerd and CRI-O nodes
        provisioner._node_runtime_cache.clear()
        for name in ("sysbox-containerd-1", "sysbox-containerd-2"):
            gateway.patch("Node", None, name, {"metadata": {"labels": {"sysbox-runtime": None}}})
        assert provisioner.node_runtime(gateway) == "cri-o"
        cs.configure(cvm=True, backend=CvmBackend.RUNTIMECLASS)
        env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"), cvm=True)
        provisioner.build(env.pk, env.generation, gateway)
        pod = pod_of(gateway, env)
        assert pod["metadata"]["annotations"]["io.kubernetes.cri-o.userns-mode"] == "auto:size=65536"
        assert "hostUsers" not in pod["spec"]


def test_a_build_overtaken_by_a_cancel_removes_the_pod_it_made(gateway, monkeypatch):
    cs.configure()
    env = cs.create(make_user(), cs.image("ghcr.io/coderadmin/example-plain"))
    real = services.environment_mark_built

    def overtaken(environment_id, *, generation):
        services.environment_cancel(load(env), actor=env.owner)  # pressed while the task ran
        return real(environment_id, generation=generation)

    monkeypatch.setattr(services, "environment_mark_built", overtaken)
    provisioner.build(env.pk, env.generation, gateway)
    assert gateway.writes()[-1] == ("delete", "Pod")
    cs.eventually(lambda: ("Pod", env.pod_name) not in cs.cluster_objects(gateway), what="pod removed")
    assert load(env).state == State.OFF
