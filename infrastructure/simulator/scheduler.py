"""The simulated cluster's scheduler: which node a pod goes to, or why none fits.

A pure function over plain object dicts, so it is tested without a cluster. It applies the filters
of the real default scheduler that the product meets — node unschedulable, taints and tolerations,
nodeSelector and required node affinity (with the RuntimeClass's scheduling constraints merged in,
as the RuntimeClass admission plugin does), and resource requests against allocatable — in the real
order, stopping at a node's first failing filter, and words the failure exactly as the real
``FailedScheduling`` event does, preemption verdict included. Among fitting nodes it prefers the
highest preferred-affinity weight, then the least requested, then the name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
UNRESOLVABLE = "unresolvable"  # preemption cannot help (affinity, taints, cordoned nodes)
RESOLVABLE = "resolvable"  # evicting lower-priority pods could help (resources)
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NON_ZERO_DEFAULTS = {"cpu": Decimal("0.1"), "memory": Decimal(200 * 1024 * 1024)}


@dataclass(frozen=True)
class Decision:
    """The chosen node, or None with the FailedScheduling message."""

    node_name: str | None
    message: str = ""


def quantity(value: Any) -> Decimal:
    return parse_quantity(value) if value not in (None, "") else Decimal(0)


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """Effective requests: containers summed, at least the largest init container, plus overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for name, value in _container_requests(container).items():
            total[name] = total.get(name, Decimal(0)) + value
    for container in spec.get("initContainers") or []:
        for name, value in _container_requests(container).items():
            total[name] = max(total.get(name, Decimal(0)), value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Decimal(0)) + quantity(value)
    return total


def _container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    # A container with limits only is given requests equal to its limits by defaulting.
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: quantity(value) for name, value in merged.items()}


def tolerates(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key") or ""
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expression(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in {"Gt", "Lt"} and key in labels and len(values) == 1:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _match_term(term: dict[str, Any], node: dict[str, Any]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    labels = node["metadata"].get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_match_expression(e, labels) for e in expressions) and all(
        _match_expression(f, node_fields) for f in fields
    )


def _node_affinity(pod: dict[str, Any]) -> dict[str, Any]:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def matches_node_selector(
    pod: dict[str, Any], node: dict[str, Any], runtime_class: dict[str, Any] | None = None
) -> bool:
    labels = node["metadata"].get("labels") or {}
    selector = dict((pod.get("spec") or {}).get("nodeSelector") or {})
    selector.update(((runtime_class or {}).get("scheduling") or {}).get("nodeSelector") or {})
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required:
        return any(_match_term(term, node) for term in required.get("nodeSelectorTerms") or [])
    return True


def _taint_failure(
    pod: dict[str, Any], node: dict[str, Any], runtime_class: dict[str, Any] | None
) -> str | None:
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    tolerations += ((runtime_class or {}).get("scheduling") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in {"NoSchedule", "NoExecute"} and not tolerates(taint, tolerations):
            return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    return None


@dataclass
class NodeUsage:
    """What the pods bound to one node hold: requests (filtering), scoring requests and count."""

    requests: dict[str, Decimal] = field(default_factory=dict)
    scoring: dict[str, Decimal] = field(default_factory=dict)
    count: int = 0


def usage_by_node(pods: list[dict[str, Any]]) -> dict[str, NodeUsage]:
    """One pass over the bound pods that still hold resources (not Succeeded or Failed)."""
    usage: dict[str, NodeUsage] = {}
    for other in pods:
        node_name = (other.get("spec") or {}).get("nodeName")
        if not node_name or (other.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        entry = usage.setdefault(node_name, NodeUsage())
        entry.count += 1
        requests = pod_requests(other)
        for name, value in requests.items():
            entry.requests[name] = entry.requests.get(name, Decimal(0)) + value
        for name, value in _with_non_zero_defaults(requests).items():
            entry.scoring[name] = entry.scoring.get(name, Decimal(0)) + value
    return usage


def _resource_failures(pod: dict[str, Any], node: dict[str, Any], usage: NodeUsage) -> list[str]:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    failures = []
    if usage.count + 1 > int(quantity(allocatable.get("pods", 0))):
        failures.append("Too many pods")
    for name, value in sorted(pod_requests(pod).items()):
        if value <= 0:
            continue
        if usage.requests.get(name, Decimal(0)) + value > quantity(allocatable.get(name)):
            failures.append(f"Insufficient {name}")
    return failures


def filter_node(
    pod: dict[str, Any],
    node: dict[str, Any],
    usage: NodeUsage,
    runtime_class: dict[str, Any] | None = None,
) -> tuple[list[str], str]:
    """The reasons a node does not fit (empty when it fits) and whether preemption could help."""
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        (pod.get("spec") or {}).get("tolerations") or [],
    ):
        return ["node(s) were unschedulable"], UNRESOLVABLE
    taint = _taint_failure(pod, node, runtime_class)
    if taint:
        return [taint], UNRESOLVABLE
    if not matches_node_selector(pod, node, runtime_class):
        return ["node(s) didn't match Pod's node affinity/selector"], UNRESOLVABLE
    return _resource_failures(pod, node, usage), RESOLVABLE


def _preferred_score(pod: dict[str, Any], node: dict[str, Any]) -> int:
    preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(
        int(item.get("weight", 0)) for item in preferred if _match_term(item.get("preference") or {}, node)
    )


def _with_non_zero_defaults(requests: dict[str, Decimal]) -> dict[str, Decimal]:
    """Requests as the scoring plugins count them: unset cpu/memory count as 100m and 200Mi."""
    scored = dict(requests)
    for name, default in NON_ZERO_DEFAULTS.items():
        if not scored.get(name):
            scored[name] = default
    return scored


def _requested_fraction(pod: dict[str, Any], node: dict[str, Any], usage: NodeUsage) -> Decimal:
    """LeastAllocated: the share of cpu and memory in use once the pod is placed (lower is better)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    requests = _with_non_zero_defaults(pod_requests(pod))
    fractions = []
    for resource in NON_ZERO_DEFAULTS:
        capacity = quantity(allocatable.get(resource))
        if capacity > 0:
            fractions.append((usage.scoring.get(resource, Decimal(0)) + requests[resource]) / capacity)
    return sum(fractions, Decimal(0))


def schedule(
    pod: dict[str, Any],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    runtime_classes: dict[str, dict[str, Any]] | None = None,
) -> Decision:
    """Pick a node for ``pod`` among ``nodes`` given the ``pods`` already bound to them."""
    # A missing RuntimeClass is the kubelet's failure (sandbox creation), not the scheduler's.
    runtime_class = (runtime_classes or {}).get((pod.get("spec") or {}).get("runtimeClassName") or "")
    usage = usage_by_node(pods)
    fitting = []
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for node in nodes:
        failures, kind = filter_node(
            pod, node, usage.get(node["metadata"]["name"], NodeUsage()), runtime_class
        )
        if not failures:
            fitting.append(node)
            continue
        reasons.update(failures)
        preemption[NOT_HELPFUL if kind == UNRESOLVABLE else NO_VICTIMS] += 1
    if fitting:
        best = min(
            fitting,
            key=lambda node: (
                -_preferred_score(pod, node),
                _requested_fraction(pod, node, usage.get(node["metadata"]["name"], NodeUsage())),
                node["metadata"]["name"],
            ),
        )
        return Decision(best["metadata"]["name"])
    return Decision(None, failed_scheduling_message(len(nodes), reasons, preemption))


def failed_scheduling_message(total: int, reasons: Counter[str], preemption: Counter[str]) -> str:
    """The real FitError wording: counted reasons sorted as strings, then the preemption verdict."""
    if total == 0:
        return "no nodes available to schedule pods"
    listed = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    verdict = ", ".join(sorted(f"{count} {reason}" for reason, count in preemption.items()))
    return f"0/{total} nodes are available: {listed}. preemption: 0/{total} nodes are available: {verdict}."
