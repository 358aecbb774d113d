"""Cluster profiles: every shipped profile reads into valid objects with the promised traits."""

from __future__ import annotations

import time

import kubernetes_validate
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator import profiles
from infrastructure.simulator.clock import Clock
from infrastructure.simulator.profiles import ProfileError, parse_profile, read_profile

from .profile_helpers import events_for, eventually, pod_manifest, reasons, running_profile

NO_VICTIMS = "No preemption victims found for incoming pod"
SHIPPED = ("demo", "cvm-ready", "not-ready", "sysbox-nodes")
ENV_NAMESPACE = "coderadmin-environments"


def _kernel(node: dict) -> tuple[int, int]:
    major, minor = node["status"]["nodeInfo"]["kernelVersion"].split(".")[:2]
    return int(major), int(minor)


def _is_cvm_capable(node: dict) -> bool:
    return node["status"]["nodeInfo"]["osImage"].startswith("Ubuntu") and _kernel(node) >= (5, 4)


def _namespace(profile: profiles.Profile, name: str) -> dict:
    return next(ns for ns in profile.of_kind("Namespace") if ns["metadata"]["name"] == name)


def test_shipped_profiles_are_listed():
    assert set(SHIPPED) <= set(profiles.available_profiles())
    assert "_images" not in profiles.available_profiles()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_object_is_valid_against_the_official_schema(name):
    profile = read_profile(name)
    assert profile.description
    for obj in profile.objects:
        kubernetes_validate.validate(obj, "1.31", strict=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_namespaces_come_first_and_nodes_are_complete(name):
    profile = read_profile(name)
    kinds = [obj["kind"] for obj in profile.objects]
    assert kinds[: kinds.count("Namespace")] == ["Namespace"] * kinds.count("Namespace")
    assert _namespace(profile, ENV_NAMESPACE)
    for node in profile.of_kind("Node"):
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"].split("://")[0] in {"containerd", "cri-o"}
        assert {"cpu", "memory", "pods"} <= set(node["status"]["allocatable"])
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == node["metadata"]["name"]


@pytest.mark.parametrize("name", SHIPPED)
def test_one_default_storage_class_waiting_for_first_consumer(name):
    classes = read_profile(name).of_kind("StorageClass")
    defaults = [
        sc
        for sc in classes
        if sc["metadata"].get("annotations", {}).get(profiles.DEFAULT_CLASS_ANNOTATION) == "true"
    ]
    assert len(defaults) == 1
    assert defaults[0]["volumeBindingMode"] == "WaitForFirstConsumer"


def test_demo_mixes_capable_and_incapable_nodes():
    nodes = read_profile("demo").of_kind("Node")
    capable = [n for n in nodes if _is_cvm_capable(n)]
    assert 0 < len(capable) < len(nodes)
    images = {n["status"]["nodeInfo"]["osImage"] for n in nodes}
    assert "Container-Optimized OS from Google" in images
    assert "Amazon Linux 2" in images
    modes = {sc["volumeBindingMode"] for sc in read_profile("demo").of_kind("StorageClass")}
    assert modes == {"WaitForFirstConsumer", "Immediate"}


def test_cvm_ready_has_only_capable_nodes_and_a_privileged_namespace():
    profile = read_profile("cvm-ready")
    assert all(_is_cvm_capable(n) for n in profile.of_kind("Node"))
    labels = _namespace(profile, ENV_NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert not profile.of_kind("MutatingWebhookConfiguration")


def test_not_ready_fails_every_requirement():
    profile = read_profile("not-ready")
    assert not any(_is_cvm_capable(n) for n in profile.of_kind("Node"))
    labels = _namespace(profile, ENV_NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["istio-injection"] == "enabled"
    assert _namespace(profile, "istio-system")
    (webhook_config,) = profile.of_kind("MutatingWebhookConfiguration")
    assert webhook_config["metadata"]["name"] == "istio-sidecar-injector"
    selector = webhook_config["webhooks"][0]["namespaceSelector"]["matchLabels"]
    assert all(labels.get(key) == value for key, value in selector.items())


def test_sysbox_nodes_profile():
    profile = read_profile("sysbox-nodes")
    (runtime_class,) = profile.of_kind("RuntimeClass")
    assert runtime_class["metadata"]["name"] == "sysbox-runc"
    assert runtime_class["handler"] == "sysbox-runc"
    assert runtime_class["scheduling"]["nodeSelector"] == {"sysbox-runtime": "running"}
    nodes = profile.of_kind("Node")
    running = [n for n in nodes if n["metadata"]["labels"].get("sysbox-runtime") == "running"]
    assert 0 < len(running) < len(nodes)
    runtimes = [n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in running]
    assert sum(r.startswith("cri-o://") for r in runtimes) == 1


def test_image_behaviours_first_match_wins_and_default_is_fine():
    catalog = read_profile("demo").images
    assert catalog.lookup("ghcr.io/coderadmin/example-systemd:22.04").has_init
    assert "coder" in catalog.lookup("ghcr.io/coderadmin/example-systemd:22.04").users
    assert not catalog.lookup("ghcr.io/coderadmin/example-plain:1").has_init
    assert "coder" not in catalog.lookup("ghcr.io/coderadmin/example-no-user:1").users
    assert catalog.lookup("registry.invalid/team/x:1").pull == profiles.PULL_UNPULLABLE
    assert catalog.lookup("docker.io/me/unpullable-thing:1").pull == profiles.PULL_UNPULLABLE
    assert catalog.lookup("selfsigned.example.com/x:1").pull == profiles.PULL_CERTIFICATE_ERROR
    assert catalog.lookup("ghcr.io/coderadmin/example-crash:1").crash
    supervisor = catalog.lookup("ghcr.io/coderadmin/coderadmin-supervisor:0.1.0")
    assert supervisor.supervisor
    assert supervisor.pull == profiles.PULL_OK
    unknown = catalog.lookup("quay.io/some/thing:1")
    assert unknown.pull == profiles.PULL_OK
    assert unknown.match == "quay.io/some/thing:1"


def test_profile_images_override_shared_ones():
    profile = parse_profile(
        "p", {"images": [{"match": "ghcr.io/coderadmin/example-plain:*", "pull": "unpullable"}]}
    )
    assert profile.images.lookup("ghcr.io/coderadmin/example-plain:1").pull == profiles.PULL_UNPULLABLE


def test_not_ready_and_cordoned_nodes_are_tainted():
    node = {
        "name": "n1",
        "ready": False,
        "unschedulable": True,
        "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
        "nodeInfo": {
            "osImage": "Ubuntu 22.04.4 LTS",
            "kernelVersion": "5.15.0",
            "kubeletVersion": "v1.30.0",
            "containerRuntimeVersion": "containerd://1.7.0",
        },
    }
    (obj,) = parse_profile("p", {"nodes": [node]}).of_kind("Node")
    keys = {taint["key"] for taint in obj["spec"]["taints"]}
    assert keys == {profiles.NOT_READY_TAINT, profiles.UNSCHEDULABLE_TAINT}
    assert obj["spec"]["unschedulable"] is True
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")


def test_timing_overrides():
    assert parse_profile("p", {"timing": {"schedule": 3}}).timing.schedule == 3.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a profile is a mapping"),
        ({"bogus": 1}, "unknown keys"),
        ({"nodes": {}}, "nodes must be a list"),
        ({"nodes": [{"name": "n"}]}, "nodeInfo.osImage is required"),
        ({"nodes": [{"name": "n", "colour": "red"}]}, "unknown keys"),
        ({"images": [{"match": "x", "pull": "maybe"}]}, "pull must be one of"),
        ({"images": [{"pull": "ok"}]}, "needs a match pattern"),
        ({"objects": [{"kind": "StorageClass"}]}, "needs apiVersion, kind and metadata"),
        ({"namespaces": [{"labels": {}}]}, "each namespace needs a name"),
        ({"timing": {"later": 1}}, "timing: unknown keys"),
    ],
)
def test_invalid_profiles_are_refused_with_a_clear_message(data, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile("p", data)


def test_unknown_profile_names_the_shipped_ones():
    with pytest.raises(
        ProfileError, match="shipped profiles: cvm-ready, default, demo, not-ready, sysbox-nodes"
    ):
        read_profile("nope")


def test_a_profile_can_be_read_from_a_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\nnamespaces: [{name: a}]\n")
    profile = read_profile(str(path))
    assert profile.name == "mine"
    assert profile.of_kind("Namespace")[0]["metadata"]["labels"] == {"kubernetes.io/metadata.name": "a"}


# --- Loaded into a running simulated cluster -------------------------------------------------------


def _big_pod(name, cpu, **spec):
    body = pod_manifest(name, **spec)
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    return body


def _failed_scheduling(api, namespace, name):
    eventually(lambda: "FailedScheduling" in reasons(api, namespace, name))
    return next(e for e in events_for(api, namespace, name) if e.reason == "FailedScheduling").message


def _phase(api, namespace, name):
    return api.read_namespaced_pod(name, namespace).status.phase


@pytest.mark.parametrize("name", SHIPPED)
def test_loaded_profile_is_served_through_the_official_client(tmp_path, name):
    profile = read_profile(name)
    with running_profile(name, tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        nodes = {node.metadata.name: node for node in api.list_node().items}
        assert set(nodes) == {n["metadata"]["name"] for n in profile.of_kind("Node")}
        for expected in profile.of_kind("Node"):
            info = nodes[expected["metadata"]["name"]].status.node_info
            assert info.os_image == expected["status"]["nodeInfo"]["osImage"]
            assert info.kernel_version == expected["status"]["nodeInfo"]["kernelVersion"]
            assert info.container_runtime_version == expected["status"]["nodeInfo"]["containerRuntimeVersion"]
        env = api.read_namespace(ENV_NAMESPACE)
        expected_labels = next(
            ns for ns in profile.of_kind("Namespace") if ns["metadata"]["name"] == ENV_NAMESPACE
        )["metadata"]["labels"]
        assert expected_labels.items() <= env.metadata.labels.items()
        classes = client.StorageV1Api(handle.api_client).list_storage_class().items
        assert {sc.metadata.name for sc in classes} == {
            sc["metadata"]["name"] for sc in profile.of_kind("StorageClass")
        }
        api.create_namespaced_pod("default", pod_manifest("hello"))
        eventually(lambda: _phase(api, "default", "hello") == "Running")
        api.create_namespaced_pod("default", _big_pod("huge", "64"))
        huge = _failed_scheduling(api, "default", "huge")
        count = len(nodes)
        assert huge == (
            f"0/{count} nodes are available: {count} Insufficient cpu. "
            f"preemption: 0/{count} nodes are available: {count} {NO_VICTIMS}."
        )


def test_loading_twice_keeps_existing_objects(tmp_path):
    with running_profile("cvm-ready", tmp_path) as handle:
        before = handle.store.get("namespaces", None, ENV_NAMESPACE)["metadata"]["uid"]
        profiles.load_profile(handle.cluster, "cvm-ready", Clock.fast())
        assert handle.store.get("namespaces", None, ENV_NAMESPACE)["metadata"]["uid"] == before


def test_not_ready_refuses_privileged_pods_and_exposes_istio(tmp_path):
    with running_profile("not-ready", tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        body = pod_manifest("priv")
        body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        with pytest.raises(ApiException) as refused:
            api.create_namespaced_pod(ENV_NAMESPACE, body)
        assert refused.value.status == 403
        assert "violates PodSecurity" in refused.value.body
        hooks = client.AdmissionregistrationV1Api(handle.api_client).list_mutating_webhook_configuration()
        (injector,) = hooks.items
        assert injector.webhooks[0].namespace_selector.match_labels == {"istio-injection": "enabled"}


def test_sysbox_profile_places_sysbox_pods_on_prepared_nodes(tmp_path):
    with running_profile("sysbox-nodes", tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        for index in range(3):
            api.create_namespaced_pod(
                "default", pod_manifest(f"sb-{index}", runtime_class_name="sysbox-runc")
            )
        for index in range(3):
            eventually(lambda index=index: _phase(api, "default", f"sb-{index}") == "Running")
            node = api.read_node(api.read_namespaced_pod(f"sb-{index}", "default").spec.node_name)
            assert node.metadata.labels["sysbox-runtime"] == "running"
        api.create_namespaced_pod("default", _big_pod("sb-big", "8", runtime_class_name="sysbox-runc"))
        assert _failed_scheduling(api, "default", "sb-big") == (
            "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
            "3 Insufficient cpu. "
            "preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, "
            "3 No preemption victims found for incoming pod."
        )
        crio = next(
            n
            for n in api.list_node().items
            if n.status.node_info.container_runtime_version.startswith("cri-o")
        )
        selector = {"kubernetes.io/hostname": crio.metadata.name}
        api.create_namespaced_pod(
            "default", pod_manifest("on-crio", runtime_class_name="sysbox-runc", node_selector=selector)
        )
        eventually(lambda: _phase(api, "default", "on-crio") == "Running")
        status = api.read_namespaced_pod("on-crio", "default").status.container_statuses[0]
        assert status.container_id.startswith("cri-o://")


def test_default_profile_has_no_kubelet(tmp_path):
    with running_profile("default", tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        assert api.list_node().items == []
        assert {ns.metadata.name for ns in api.list_namespace().items} == {"default", "kube-system"}
        api.create_namespaced_pod("default", pod_manifest("idle"))
        time.sleep(0.2)
        assert _phase(api, "default", "idle") == "Pending"
        assert api.list_namespaced_event("default").items == []


def test_demo_ships_rbac_that_the_server_enforces(tmp_path):
    with running_profile("demo", tmp_path) as handle:
        token = handle.token_for_service_account("default", "demo-viewer")
        viewer = client.CoreV1Api(handle.api_client_for_token(token))
        assert viewer.list_namespaced_pod("default").items == []
        with pytest.raises(ApiException) as denied:
            viewer.create_namespaced_pod("default", pod_manifest("nope"))
        assert denied.value.status == 403
