"""The simulated kubelet, scheduler and volume binder, observed through the official client."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator.clock import Clock
from infrastructure.simulator.cluster import SimulatedCluster
from infrastructure.simulator.profiles import load_profile, valid_reference
from infrastructure.simulator.store import Store
from infrastructure.simulator.testing import ClusterHandle
from infrastructure.supervisor import contract

from .profile_helpers import (
    events_for,
    eventually,
    list_version,
    pod_manifest,
    reasons,
    running_profile,
    wait_for_pod,
    watch_pod_until,
    write_profile,
)

NS = "default"


@pytest.fixture
def demo(tmp_path):
    with running_profile("demo", tmp_path) as handle:
        yield handle


@pytest.fixture
def api(demo):
    return client.CoreV1Api(demo.api_client)


def read(api, name, namespace=NS):
    return api.read_namespaced_pod(name, namespace)


def status_of(api, name, namespace=NS):
    return read(api, name, namespace).status


def _waiting(pod):
    statuses = pod.status.container_statuses or []
    if not statuses or statuses[0].state.waiting is None:
        return None
    return statuses[0].state.waiting.reason


def waiting_reason(api, name, namespace=NS):
    return _waiting(read(api, name, namespace))


def event(api, name, reason, namespace=NS):
    return next(e for e in events_for(api, namespace, name) if e.reason == reason)


def condition(api, name, kind, namespace=NS):
    return next((c for c in status_of(api, name, namespace).conditions or [] if c.type == kind), None)


def test_a_pod_runs_with_the_real_status_and_events(api):
    api.create_namespaced_pod(NS, pod_manifest("web"))
    eventually(lambda: condition(api, "web", "Ready") and condition(api, "web", "Ready").status == "True")
    pod = read(api, "web")
    status = pod.status
    assert status.phase == "Running"
    assert pod.spec.node_name in {"pool-ubuntu-a1", "pool-ubuntu-a2"}
    node = client.CoreV1Api(api.api_client).read_node(pod.spec.node_name)
    assert status.host_ip == next(a.address for a in node.status.addresses if a.type == "InternalIP")
    assert status.pod_ip.startswith(node.spec.pod_cidr.rsplit(".", 1)[0])
    assert status.start_time is not None
    (container,) = status.container_statuses
    assert container.ready and container.started
    assert container.state.running.started_at is not None
    assert container.container_id.startswith("containerd://")
    assert container.image_id.startswith("docker.io/library/busybox@sha256:")
    events = {e.reason: e for e in events_for(api, NS, "web")}
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= set(events)
    scheduled = events["Scheduled"]
    assert scheduled.source.component == "default-scheduler"
    assert scheduled.message == f"Successfully assigned {NS}/web to {pod.spec.node_name}"
    assert scheduled.involved_object.kind == "Pod"
    assert scheduled.involved_object.uid == pod.metadata.uid
    started = events["Started"]
    assert (started.source.component, started.source.host) == ("kubelet", pod.spec.node_name)
    assert started.involved_object.field_path == "spec.containers{main}"
    assert started.count == 1
    assert started.first_timestamp is not None
    assert events["Pulled"].message.startswith('Successfully pulled image "busybox:1.36" in ')
    modern = client.EventsV1Api(api.api_client).list_namespaced_event(NS).items
    assert {"Scheduled", "Started"} <= {e.reason for e in modern if e.regarding.uid == pod.metadata.uid}


def test_image_already_on_the_node_is_not_pulled_again(api):
    selector = {"kubernetes.io/hostname": "pool-cos-b1"}
    api.create_namespaced_pod(NS, pod_manifest("first", node_selector=selector))
    eventually(lambda: status_of(api, "first").phase == "Running")
    api.create_namespaced_pod(NS, pod_manifest("second", node_selector=selector))
    eventually(lambda: status_of(api, "second").phase == "Running")
    assert (
        event(api, "second", "Pulled").message == 'Container image "busybox:1.36" already present on machine'
    )
    assert "Pulling" not in reasons(api, NS, "second")


def test_nothing_fits_stays_pending_then_schedules_when_a_node_joins(api):
    body = pod_manifest("big")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "12"}}
    api.create_namespaced_pod(NS, body)
    eventually(lambda: "FailedScheduling" in reasons(api, NS, "big"))
    failed = event(api, "big", "FailedScheduling")
    assert failed.type == "Warning"
    assert failed.message == (
        "0/4 nodes are available: 4 Insufficient cpu. "
        "preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
    )
    scheduled = condition(api, "big", "PodScheduled")
    assert (scheduled.status, scheduled.reason, scheduled.message) == (
        "False",
        "Unschedulable",
        failed.message,
    )
    assert status_of(api, "big").phase == "Pending"
    api.create_node(
        {
            "metadata": {"name": "huge-1"},
            "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}},
        }
    )
    eventually(lambda: read(api, "big").spec.node_name == "huge-1")
    eventually(lambda: status_of(api, "big").phase == "Running")


def test_wait_for_first_consumer_binds_when_the_pod_is_scheduled(api):
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    api.create_namespaced_persistent_volume_claim(NS, claim)
    eventually(lambda: "WaitForFirstConsumer" in reasons(api, NS, "data"))
    assert api.read_namespaced_persistent_volume_claim("data", NS).status.phase == "Pending"
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    api.create_namespaced_pod(NS, pod_manifest("user", volumes=volumes))
    eventually(lambda: status_of(api, "user").phase == "Running")
    bound = api.read_namespaced_persistent_volume_claim("data", NS)
    assert bound.status.phase == "Bound"
    assert bound.status.capacity == {"storage": "10Gi"}
    assert bound.spec.volume_name == f"pvc-{bound.metadata.uid}"
    assert bound.spec.storage_class_name == "standard-rwo"
    assert (
        bound.metadata.annotations["volume.kubernetes.io/selected-node"] == read(api, "user").spec.node_name
    )
    assert {"Provisioning", "ProvisioningSucceeded"} <= reasons(api, NS, "data")
    assert event(api, "user", "SuccessfulAttachVolume").message == (
        f'AttachVolume.Attach succeeded for volume "{bound.spec.volume_name}"'
    )


def test_immediate_class_binds_without_a_pod(api):
    claim = {
        "metadata": {"name": "fast"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "premium-immediate",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    api.create_namespaced_persistent_volume_claim(NS, claim)
    eventually(lambda: api.read_namespaced_persistent_volume_claim("fast", NS).status.phase == "Bound")
    claim_obj = api.read_namespaced_persistent_volume_claim("fast", NS)
    assert "volume.kubernetes.io/selected-node" not in claim_obj.metadata.annotations


def test_unknown_storage_class_fails_provisioning_and_blocks_the_pod(api):
    claim = {
        "metadata": {"name": "odd"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "nope",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    api.create_namespaced_persistent_volume_claim(NS, claim)
    eventually(lambda: "ProvisioningFailed" in reasons(api, NS, "odd"))
    assert event(api, "odd", "ProvisioningFailed").message == 'storageclass.storage.k8s.io "nope" not found'
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "odd"}}]
    api.create_namespaced_pod(NS, pod_manifest("stuck", volumes=volumes))
    eventually(lambda: "FailedScheduling" in reasons(api, NS, "stuck"))
    assert event(api, "stuck", "FailedScheduling").message.startswith(
        "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: "
    )


def test_missing_claim_then_created(api):
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "later"}}]
    api.create_namespaced_pod(NS, pod_manifest("waits", volumes=volumes))
    eventually(lambda: "FailedScheduling" in reasons(api, NS, "waits"))
    assert event(api, "waits", "FailedScheduling").message == (
        '0/4 nodes are available: persistentvolumeclaim "later" not found. '
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    )
    claim = {
        "metadata": {"name": "later"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    api.create_namespaced_persistent_volume_claim(NS, claim)
    eventually(lambda: status_of(api, "waits").phase == "Running")


def test_read_write_once_claim_held_by_a_terminating_pod_delays_the_next(tmp_path):
    with running_profile(write_profile(tmp_path, "timing: {stop_seconds: 1000}\n"), tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        claim = {
            "metadata": {"name": "home"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        api.create_namespaced_persistent_volume_claim(NS, claim)
        volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
        api.create_namespaced_pod(NS, pod_manifest("old", volumes=volumes))
        eventually(lambda: status_of(api, "old").phase == "Running")
        api.delete_namespaced_pod("old", NS, grace_period_seconds=3000)
        assert read(api, "old").metadata.deletion_timestamp is not None
        api.create_namespaced_pod(NS, pod_manifest("new", volumes=volumes))
        eventually(lambda: "FailedAttachVolume" in reasons(api, NS, "new"))
        volume_name = api.read_namespaced_persistent_volume_claim("home", NS).spec.volume_name
        attach = event(api, "new", "FailedAttachVolume")
        assert attach.type == "Warning"
        assert (
            attach.message
            == f'Multi-Attach error for volume "{volume_name}" Volume is already used by pod(s) old'
        )
        assert status_of(api, "new").phase == "Pending"
        eventually(lambda: status_of(api, "new").phase == "Running")
        with pytest.raises(ApiException) as gone:
            read(api, "old")
        assert gone.value.status == 404


def test_volumes_are_released_once_containers_stop_even_if_the_pod_lingers(api):
    claim = {
        "metadata": {"name": "cache"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    api.create_namespaced_persistent_volume_claim(NS, claim)
    volumes = [{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}]
    body = pod_manifest("kept", volumes=volumes)
    body["metadata"]["finalizers"] = ["example.com/keep"]
    api.create_namespaced_pod(NS, body)
    eventually(lambda: status_of(api, "kept").phase == "Running")
    api.delete_namespaced_pod("kept", NS)
    api.create_namespaced_pod(NS, pod_manifest("next", volumes=volumes))
    eventually(lambda: status_of(api, "next").phase == "Running")
    assert read(api, "kept").metadata.deletion_timestamp is not None


def test_graceful_deletion_stops_containers_first(api):
    api.create_namespaced_pod(NS, pod_manifest("leaving"))
    eventually(lambda: status_of(api, "leaving").phase == "Running")
    pod = api.delete_namespaced_pod("leaving", NS, grace_period_seconds=60)
    assert pod.metadata.deletion_grace_period_seconds == 60
    assert pod.metadata.deletion_timestamp is not None
    eventually(lambda: "Killing" in reasons(api, NS, "leaving"))
    assert event(api, "leaving", "Killing").message == "Stopping container main"

    def gone():
        try:
            read(api, "leaving")
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone)


@pytest.mark.parametrize(
    ("image", "message_part"),
    [
        ("registry.invalid/team/app:1", "dial tcp: lookup registry.invalid: no such host"),
        ("docker.io/team/unpullable:1", "docker.io/team/unpullable:1: not found"),
        ("selfsigned.example.com/app:1", "x509: certificate signed by unknown authority"),
    ],
)
def test_unpullable_images_back_off(api, image, message_part):
    since = list_version(api)
    api.create_namespaced_pod(NS, pod_manifest("nopull", image))
    revisions = watch_pod_until(api, "nopull", lambda p: _waiting(p) == "ImagePullBackOff", since=since)
    sequence = [_waiting(p) for p in revisions if _waiting(p)]
    assert sequence[: sequence.index("ErrImagePull")] == ["ContainerCreating"] * sequence.index(
        "ErrImagePull"
    )
    assert sequence[-2:] == ["ErrImagePull", "ImagePullBackOff"]
    pull_error = next(
        e for e in events_for(api, NS, "nopull") if e.message.startswith("Failed to pull image")
    )
    assert pull_error.type == "Warning"
    assert pull_error.message.startswith(f'Failed to pull image "{image}": rpc error: code = ')
    assert message_part in pull_error.message
    pod = wait_for_pod(api, "nopull", lambda p: _waiting(p) == "ImagePullBackOff")
    assert pod.status.container_statuses[0].state.waiting.message == f'Back-off pulling image "{image}"'
    messages = {(e.reason, e.message) for e in events_for(api, NS, "nopull")}
    assert ("Failed", "Error: ErrImagePull") in messages
    assert ("Failed", "Error: ImagePullBackOff") in messages
    assert ("BackOff", f'Back-off pulling image "{image}"') in messages
    assert status_of(api, "nopull").phase == "Pending"
    eventually(lambda: event(api, "nopull", "Pulling").count >= 2)


def test_invalid_image_name(api):
    api.create_namespaced_pod(NS, pod_manifest("bad", "Not/A:Valid:Ref"))
    eventually(lambda: waiting_reason(api, "bad") == "InvalidImageName")
    assert ("Failed", "Error: InvalidImageName") in {
        (e.reason, e.message) for e in events_for(api, NS, "bad")
    }
    assert "invalid reference format" in event(api, "bad", "InspectFailed").message


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("busybox", True),
        ("busybox:1.36", True),
        ("ghcr.io/coderadmin/example-systemd:22.04", True),
        ("localhost:5000/a/b:tag", True),
        (f"busybox@sha256:{'a' * 64}", True),
        ("Busybox", False),
        ("a:b:c", False),
        ("", False),
        ("a b", False),
    ],
)
def test_reference_grammar(image, valid):
    assert valid_reference(image) is valid


def test_crashing_container_loops_with_restart_policy_always(api):
    api.create_namespaced_pod(NS, pod_manifest("crash", "ghcr.io/coderadmin/example-crash:1"))
    pod = wait_for_pod(api, "crash", lambda p: _waiting(p) == "CrashLoopBackOff")
    container = pod.status.container_statuses[0]
    assert container.restart_count >= 1
    assert container.last_state.terminated.exit_code == 1
    assert container.last_state.terminated.reason == "Error"
    assert container.last_state.terminated.message == "fatal: configuration file /etc/app.conf not found"
    assert container.state.waiting.message.startswith(
        "back-off 10s restarting failed container=main pod=crash_"
    )
    backoff = event(api, "crash", "BackOff")
    assert backoff.type == "Warning"
    assert backoff.message.startswith("Back-off restarting failed container main in pod crash_default(")
    eventually(lambda: status_of(api, "crash").container_statuses[0].restart_count >= 2)
    assert status_of(api, "crash").phase == "Running"


def test_crashing_container_fails_the_pod_with_restart_policy_never(api):
    api.create_namespaced_pod(
        NS, pod_manifest("once", "ghcr.io/coderadmin/example-crash:1", restart_policy="Never")
    )
    eventually(lambda: status_of(api, "once").phase == "Failed")
    terminated = status_of(api, "once").container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (1, "Error")
    assert terminated.message == "fatal: configuration file /etc/app.conf not found"
    assert api.read_namespaced_pod_log("once", NS) == "fatal: configuration file /etc/app.conf not found\n"
    assert condition(api, "once", "Ready").status == "False"


def test_missing_secret_volume_holds_the_pod_in_container_creating(api):
    volumes = [{"name": "creds", "secret": {"secretName": "registry"}}]
    api.create_namespaced_pod(NS, pod_manifest("mounts", volumes=volumes))
    eventually(lambda: "FailedMount" in reasons(api, NS, "mounts"))
    assert event(api, "mounts", "FailedMount").message == (
        'MountVolume.SetUp failed for volume "creds" : secret "registry" not found'
    )
    assert waiting_reason(api, "mounts") == "ContainerCreating"
    assert status_of(api, "mounts").phase == "Pending"
    eventually(lambda: event(api, "mounts", "FailedMount").count >= 2)
    api.create_namespaced_secret(NS, {"metadata": {"name": "registry"}, "data": {"config.json": "e30="}})
    eventually(lambda: status_of(api, "mounts").phase == "Running")


def test_missing_secret_reference_is_a_config_error(api):
    body = pod_manifest("envs")
    body["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "api"}}}
    ]
    api.create_namespaced_pod(NS, body)
    eventually(lambda: waiting_reason(api, "envs") == "CreateContainerConfigError")
    waiting = status_of(api, "envs").container_statuses[0].state.waiting
    assert waiting.message == 'secret "tokens" not found'
    assert ("Failed", 'Error: secret "tokens" not found') in {
        (e.reason, e.message) for e in events_for(api, NS, "envs")
    }
    api.create_namespaced_secret(NS, {"metadata": {"name": "tokens"}, "string_data": {"api": "x"}})
    eventually(lambda: status_of(api, "envs").phase == "Running")


def test_readiness_probe_on_the_marker_never_passes_without_a_supervisor(api):
    body = pod_manifest("probed")
    body["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": list(contract.READINESS_COMMAND)},
        "periodSeconds": 2,
    }
    api.create_namespaced_pod(NS, body)
    eventually(lambda: status_of(api, "probed").phase == "Running")
    body = pod_manifest("other-probe")
    body["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["true"]},
        "initialDelaySeconds": 5,
    }
    api.create_namespaced_pod(NS, body)
    eventually(lambda: getattr(condition(api, "other-probe", "Ready"), "status", None) == "True")
    ready = condition(api, "probed", "Ready")
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert ready.message == "containers with unready status: [main]"
    assert not status_of(api, "probed").container_statuses[0].ready


def test_init_containers_complete_before_the_main_ones(api):
    body = pod_manifest("init", init_containers=[{"name": "setup", "image": "busybox:1.36"}])
    api.create_namespaced_pod(NS, body)
    eventually(lambda: status_of(api, "init").phase == "Running")
    status = status_of(api, "init")
    (init,) = status.init_container_statuses
    assert (init.state.terminated.exit_code, init.state.terminated.reason) == (0, "Completed")
    assert condition(api, "init", "Initialized").status == "True"
    assert event(api, "init", "Started").involved_object.field_path in {
        "spec.initContainers{setup}",
        "spec.containers{main}",
    }


def test_completed_pod_succeeds(tmp_path):
    profile = write_profile(
        tmp_path, "images: [{match: 'example.com/job:*', crash: true, exit_code: 0}]\n", "cri-o://1.31.1"
    )
    with running_profile(profile, tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        api.create_namespaced_pod(NS, pod_manifest("job", "example.com/job:1", restart_policy="Never"))
        eventually(lambda: status_of(api, "job").phase == "Succeeded")
        container = status_of(api, "job").container_statuses[0]
        assert container.state.terminated.reason == "Completed"
        assert container.container_id.startswith("cri-o://")


def test_nodes_report_a_heartbeat(api):
    eventually(lambda: all(c.last_heartbeat_time for n in api.list_node().items for c in n.status.conditions))


def test_deleting_a_namespace_stops_and_removes_its_pods(api):
    api.create_namespace({"metadata": {"name": "team"}})
    api.create_namespaced_pod("team", pod_manifest("member"))
    eventually(lambda: status_of(api, "member", "team").phase == "Running")
    api.delete_namespace("team")

    def gone():
        try:
            api.read_namespace("team")
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone)


def test_a_saved_state_loaded_again_keeps_running_pods_running(tmp_path):
    with running_profile("demo", tmp_path) as first:
        api = client.CoreV1Api(first.api_client)
        selector = {"kubernetes.io/hostname": "pool-ubuntu-a1"}
        api.create_namespaced_pod(NS, pod_manifest("kept", node_selector=selector))
        eventually(lambda: getattr(condition(api, "kept", "Ready"), "status", None) == "True")
        state = first.store.dump()
        before = read(api, "kept")
    store = Store()
    store.load(state)
    cluster = SimulatedCluster(store=store, bookmark_interval=0.2)
    load_profile(cluster, "demo", Clock.fast())
    cluster.start()
    handle = ClusterHandle(cluster, cluster.write_kubeconfig(tmp_path / "again"))
    try:
        api = client.CoreV1Api(handle.api_client)
        api.create_namespaced_pod(NS, pod_manifest("fresh", node_selector=selector))
        eventually(lambda: status_of(api, "fresh").phase == "Running")
        after = read(api, "kept")
        assert (
            after.status.container_statuses[0].container_id
            == before.status.container_statuses[0].container_id
        )
        assert condition(api, "kept", "Ready").status == "True"
        assert event(api, "kept", "Started").count == 1
        assert status_of(api, "fresh").pod_ip != after.status.pod_ip
    finally:
        handle.close()
