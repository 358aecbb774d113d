"""The scheduler: placement and the real FailedScheduling wording, on plain objects and on profiles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from infrastructure.simulator.profiles import read_profile
from infrastructure.simulator.scheduler import (
    failed_scheduling_message,
    pod_requests,
    schedule,
    tolerates,
)


def node(name, labels=None, taints=None, cpu="4", memory="8Gi", pods="110", unschedulable=False, **extra):
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **extra}
    spec = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"allocatable": allocatable},
    }


def pod(cpu=None, memory=None, node_name=None, phase="Pending", **spec):
    requests = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value}
    body = {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": body, "status": {"phase": phase}}


NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def test_the_brief_example_message():
    nodes = [node("a", labels={"x": "y"}), node("b", {"x": "z"}, cpu="1"), node("c", {"x": "z"}, cpu="1")]
    decision = schedule(pod(cpu="2", nodeSelector={"x": "z"}), nodes, [])
    assert decision.node_name is None
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )


def test_all_insufficient_reports_no_victims():
    decision = schedule(pod(cpu="8"), [node("a"), node("b"), node("c")], [])
    assert decision.message == (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )


def test_several_insufficient_resources_on_one_node_are_each_counted():
    decision = schedule(pod(cpu="8", memory="64Gi"), [node("a")], [])
    assert decision.message.startswith("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.")


def test_no_nodes():
    assert schedule(pod(), [], []).message == "no nodes available to schedule pods"


def test_untolerated_taint_is_named_and_toleration_lets_through():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    nodes = [node("a", taints=[taint])]
    denied = schedule(pod(), nodes, [])
    assert denied.message == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
        f"preemption: 0/1 nodes are available: 1 {NOT_HELPFUL}."
    )
    equal = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    assert schedule(pod(tolerations=equal), nodes, []).node_name == "a"
    assert schedule(pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]), nodes, []).node_name == "a"
    assert schedule(pod(tolerations=[{"operator": "Exists"}]), nodes, []).node_name == "a"
    wrong_value = [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]
    assert schedule(pod(tolerations=wrong_value), nodes, []).node_name is None


@pytest.mark.parametrize(
    ("effect", "fits"), [("NoSchedule", False), ("NoExecute", False), ("PreferNoSchedule", True)]
)
def test_taint_effects(effect, fits):
    nodes = [node("a", taints=[{"key": "k", "effect": effect}])]
    assert (schedule(pod(), nodes, []).node_name == "a") is fits


def test_toleration_effect_must_match():
    taint = {"key": "k", "effect": "NoExecute"}
    assert not tolerates(taint, [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}])
    assert tolerates(taint, [{"key": "k", "operator": "Exists", "effect": "NoExecute"}])


def test_unschedulable_node():
    decision = schedule(pod(cpu="1"), [node("a", unschedulable=True), node("b", cpu="0")], [])
    assert decision.message == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. "
        f"preemption: 0/2 nodes are available: 1 {NO_VICTIMS}, 1 {NOT_HELPFUL}."
    )
    tolerated = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert schedule(pod(tolerations=tolerated), [node("a", unschedulable=True)], []).node_name == "a"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"n1", "n2"}),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"n2", "n3"}),
        ({"key": "zone", "operator": "Exists"}, {"n1", "n2"}),
        ({"key": "zone", "operator": "DoesNotExist"}, {"n3"}),
        ({"key": "cores", "operator": "Gt", "values": ["4"]}, {"n2"}),
        ({"key": "cores", "operator": "Lt", "values": ["8"]}, {"n1"}),
    ],
)
def test_required_node_affinity_operators(expression, expected):
    nodes = [
        node("n1", labels={"zone": "a", "cores": "4"}),
        node("n2", labels={"zone": "b", "cores": "16"}),
        node("n3", labels={}),
    ]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }
    fitting = set()
    for candidate in nodes:
        if schedule(pod(affinity=affinity), [candidate], []).node_name:
            fitting.add(candidate["metadata"]["name"])
    assert fitting == expected


def test_node_affinity_terms_are_ored_and_match_fields():
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
                ]
            }
        }
    }
    assert schedule(pod(affinity=affinity), [node("a"), node("b")], []).node_name == "b"


def test_preferred_affinity_then_least_requested():
    nodes = [node("a"), node("b"), node("c")]
    busy = [pod(cpu="3", node_name="a", phase="Running")]
    assert schedule(pod(cpu="1"), nodes, busy).node_name == "b"
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "preference": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["c"]}
                        ]
                    },
                }
            ]
        }
    }
    nodes[2]["metadata"]["labels"]["kubernetes.io/hostname"] = "c"
    assert schedule(pod(cpu="1", affinity=preferred), nodes, busy).node_name == "c"


def test_bound_pods_use_resources_until_they_terminate():
    nodes = [node("a", cpu="2", pods="2")]
    running = [pod(cpu="1500m", node_name="a", phase="Running")]
    assert schedule(pod(cpu="1"), nodes, running).message.startswith(
        "0/1 nodes are available: 1 Insufficient cpu."
    )
    finished = [pod(cpu="1500m", node_name="a", phase="Succeeded")]
    assert schedule(pod(cpu="1"), nodes, finished).node_name == "a"
    full = [pod(node_name="a", phase="Running"), pod(node_name="a", phase="Pending")]
    assert "1 Too many pods" in schedule(pod(), nodes, full).message


def test_extended_resources():
    nodes = [node("cpu-only"), node("gpu", **{"nvidia.com/gpu": "1"})]
    gpu_pod = pod()
    gpu_pod["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    assert schedule(gpu_pod, nodes, []).node_name == "gpu"
    assert "1 Insufficient nvidia.com/gpu" in schedule(gpu_pod, nodes[:1], []).message


def test_pod_requests_sum_containers_max_init_and_overhead():
    body = pod(cpu="250m")
    body["spec"]["containers"].append(
        {"name": "d", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}
    )
    body["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    body["spec"]["overhead"] = {"cpu": "100m"}
    requests = pod_requests(body)
    assert requests["cpu"] == Decimal("2.1")
    assert requests["memory"] == 1024**3


def test_runtime_class_scheduling_constraints():
    profile = read_profile("sysbox-nodes")
    nodes = profile.of_kind("Node")
    classes = {rc["metadata"]["name"]: rc for rc in profile.of_kind("RuntimeClass")}
    sysbox_pod = pod(cpu="1", runtimeClassName="sysbox-runc")
    chosen = schedule(sysbox_pod, nodes, [], classes).node_name
    chosen_node = next(n for n in nodes if n["metadata"]["name"] == chosen)
    assert chosen_node["metadata"]["labels"]["sysbox-runtime"] == "running"
    tainted = [{**n, "spec": {"taints": [{"key": "sysbox", "effect": "NoSchedule"}]}} for n in nodes]
    tolerating = {
        "sysbox-runc": {
            **classes["sysbox-runc"],
            "scheduling": {
                "nodeSelector": {"sysbox-runtime": "running"},
                "tolerations": [{"key": "sysbox", "operator": "Exists"}],
            },
        }
    }
    assert schedule(sysbox_pod, tainted, [], tolerating).node_name is not None
    assert schedule(sysbox_pod, tainted, [], classes).node_name is None


def test_sysbox_pod_that_fits_nowhere():
    profile = read_profile("sysbox-nodes")
    classes = {rc["metadata"]["name"]: rc for rc in profile.of_kind("RuntimeClass")}
    decision = schedule(pod(cpu="8", runtimeClassName="sysbox-runc"), profile.of_kind("Node"), [], classes)
    assert decision.message == (
        "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient cpu. "
        f"preemption: 0/4 nodes are available: 1 {NOT_HELPFUL}, 3 {NO_VICTIMS}."
    )


@pytest.mark.parametrize("name", ["demo", "cvm-ready", "not-ready"])
def test_profiles_schedule_a_small_pod_and_refuse_a_huge_one(name):
    nodes = read_profile(name).of_kind("Node")
    assert schedule(pod(cpu="500m", memory="1Gi"), nodes, []).node_name in {
        n["metadata"]["name"] for n in nodes
    }
    huge = schedule(pod(cpu="64"), nodes, [])
    assert huge.message == (
        f"0/{len(nodes)} nodes are available: {len(nodes)} Insufficient cpu. "
        f"preemption: 0/{len(nodes)} nodes are available: {len(nodes)} {NO_VICTIMS}."
    )


def test_demo_ubuntu_selector_lands_on_ubuntu():
    nodes = read_profile("demo").of_kind("Node")
    decision = schedule(pod(nodeSelector={"cloud.google.com/gke-os-distribution": "ubuntu"}), nodes, [])
    assert decision.node_name in {"pool-ubuntu-a1", "pool-ubuntu-a2"}


def test_message_helper_sorts_as_strings():
    from collections import Counter

    message = failed_scheduling_message(
        12, Counter({"Insufficient cpu": 10, "Too many pods": 2}), Counter({"x": 12})
    )
    assert message.startswith("0/12 nodes are available: 10 Insufficient cpu, 2 Too many pods.")
