"""Readiness checks: can this cluster run container-based virtual machines, node by node, and why not?

:func:`run_checks` reads the cluster through a :class:`~infrastructure.gateway.Gateway` and returns a
:class:`Report` of :class:`CheckResult` rows (one per check, or one per node where that matters). Nothing
here writes to the cluster except server-side dry runs and SelfSubjectAccessReviews, and nothing writes to
the database: the Celery task stores the report. A cluster that cannot be reached, or that rejects our
credentials, turns into a failed "cluster connection" result instead of an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model

from infrastructure import gateway as gw
from infrastructure.gateway import (
    AlreadyExists,
    Forbidden,
    Gateway,
    GatewayError,
    Kind,
    NotFound,
    Unauthorized,
    Unavailable,
    is_simulated,
)
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.nodeinfo import (
    Status,
    container_runtime,
    cvm_node_verdict,
    parse_k8s_version,
    supports_host_users,
)
from infrastructure.permissions import access_reviews

# Cluster-scoped kinds the checks read that the gateway's table does not list yet. ``setdefault`` keeps
# the gateway's own entry when it gains one.
READINESS_KINDS: dict[str, Kind] = {
    "StorageClass": Kind(gw.client.StorageV1Api, "storage_class", namespaced=False),
    "RuntimeClass": Kind(gw.client.NodeV1Api, "runtime_class", namespaced=False),
    "MutatingWebhookConfiguration": Kind(
        gw.client.AdmissionregistrationV1Api, "mutating_webhook_configuration", namespaced=False
    ),
    # networking.k8s.io/v1 since Kubernetes 1.33: the cluster's service ranges.
    "ServiceCIDR": Kind(gw.client.NetworkingV1Api, "service_cidr", namespaced=False),
    "SelfSubjectAccessReview": Kind(
        gw.client.AuthorizationV1Api, "self_subject_access_review", namespaced=False
    ),
}
for _name, _kind in READINESS_KINDS.items():
    gw.KINDS.setdefault(_name, _kind)

# The product's own APIs: events.k8s.io/v1 (1.19), node.k8s.io/v1 (1.20), Pod Security Admission GA (1.25).
MIN_KUBERNETES = (1, 25)
# What the original CVM requirement asked for, shown for reference.
ORIGINAL_MIN_KUBERNETES = (1, 17)
# sysbox's Kubernetes installer is tested on recent releases only; older ones work but are untested.
SYSBOX_OLDEST_TESTED = (1, 29)

RUNTIME_CLASS_NAME = "sysbox-runc"
SYSBOX_RUNNING_LABEL = ("sysbox-runtime", "running")
SYSBOX_INSTALL_LABEL = ("sysbox-install", "yes")
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ISTIO_NAMESPACE = "istio-system"
# Namespace labels by which Istio reaches a namespace: sidecar injection (classic or revisioned) and ambient.
ISTIO_INJECTION_LABEL = "istio-injection"
ISTIO_REVISION_LABEL = "istio.io/rev"
ISTIO_DATAPLANE_LABEL = "istio.io/dataplane-mode"
# Webhooks of meshes that inject a proxy into pods (Istio, Linkerd, Kuma, Consul, Open Service Mesh).
_INJECTOR = re.compile(r"istio|sidecar-injector|linkerd|proxy-injector|kuma|consul|openservicemesh", re.I)
_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

# Titles, in the order the page shows the checks.
TITLES: dict[str, str] = {
    "cluster": "Cluster connection",
    "version": "Kubernetes version",
    "nodes": "Nodes for CVMs",
    "admission": "Privileged pods and hostPath mounts",
    "proxy": "Istio and other service-mesh proxies",
    "runtimeclass": "sysbox RuntimeClass",
    "namespace": "Environments namespace",
    "storage": "Storage class",
    "permissions": "Service account permissions",
    "capacity": "Capacity",
}

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: ``subject`` names the node (or permission) it is about, blank otherwise."""

    check: str
    status: Status
    reason: str
    subject: str = ""

    @property
    def blocking(self) -> bool:
        """A failed row is a hard requirement: CVMs are only enabled past it with an explicit override."""
        return self.status == Status.FAIL

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": str(self.status),
            "reason": self.reason,
            "subject": self.subject,
        }


def worst(statuses: Iterable[Status]) -> Status:
    """fail > warn > pass > info: the status a set of results adds up to."""
    seen = set(statuses)
    for status in (Status.FAIL, Status.WARN, Status.PASS):
        if status in seen:
            return status
    return Status.INFO


@dataclass
class Report:
    """Everything one run found. ``cluster_cidrs`` (pod and service ranges) feed the bridge CIDR check."""

    results: list[CheckResult] = field(default_factory=list)
    cluster_version: str = ""
    simulated: bool = False
    cluster_cidrs: list[str] = field(default_factory=list)
    namespace_missing: bool = False

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.blocking]


# --- pure helpers ---------------------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels + matchExpressions) against labels; empty matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Does any toleration tolerate the taint (the scheduler's rules)?"""
    for toleration in tolerations:
        effect = toleration.get("effect", "")
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key", "")
        operator = toleration.get("operator", "Equal")
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_exclusion(
    node: Mapping[str, Any], selector: Mapping[str, str], tolerations: Iterable[Mapping[str, Any]]
) -> str:
    """Why CVM pods cannot land on this node ("" when they can)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return "The node is cordoned (unschedulable)."
    missing = [f"{key}={value}" for key, value in selector.items() if labels.get(key) != value]
    if missing:
        return f"It lacks the label(s) CVM pods select: {', '.join(missing)}."
    tolerations = list(tolerations)
    for taint in spec.get("taints") or []:
        if taint.get("effect") in _BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            shown = f"{taint.get('key', '')}={taint.get('value', '')}:{taint.get('effect')}"
            return f"Its taint {shown} is not tolerated by the CVM tolerations."
    return ""


_MEMORY_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]*)")


def _quantity(value: object) -> Decimal | None:
    match = _QUANTITY.fullmatch(str(value).strip()) if value is not None else None
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2)
    if suffix == "m":
        return number / 1000
    if suffix == "":
        return number
    if suffix in _MEMORY_SUFFIXES:
        return number * _MEMORY_SUFFIXES[suffix]
    return None


def cpu_millicores(value: object) -> int:
    """A CPU quantity ("7910m", "8", "0.5") in millicores; 0 when it does not parse."""
    number = _quantity(value)
    return int(number * 1000) if number is not None else 0


def memory_mib(value: object) -> int:
    """A memory quantity ("30310Mi", "14Gi", bytes) in MiB, rounded down; 0 when it does not parse."""
    number = _quantity(value)
    return int(number / 2**20) if number is not None else 0


def pod_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, MiB) a pod requests: its containers' sum, or its largest init container if bigger."""
    spec = pod.get("spec") or {}

    def requests(container: Mapping[str, Any]) -> tuple[int, int]:
        asked = (container.get("resources") or {}).get("requests") or {}
        return cpu_millicores(asked.get("cpu", 0)), memory_mib(asked.get("memory", 0))

    main = [requests(c) for c in spec.get("containers") or []]
    init = [requests(c) for c in spec.get("initContainers") or []]
    cpu = max(sum(c for c, _ in main), max((c for c, _ in init), default=0))
    memory = max(sum(m for _, m in main), max((m for _, m in init), default=0))
    return cpu, memory


def version_results(version: Mapping[str, Any]) -> list[CheckResult]:
    """Check 1: the API server's version against the product's minimum (and the original one)."""
    git_version = str(version.get("gitVersion", ""))
    parsed = parse_k8s_version(git_version)
    minimum = "{}.{}".format(*MIN_KUBERNETES)
    original = "{}.{}".format(*ORIGINAL_MIN_KUBERNETES)
    tested = "{}.{}".format(*SYSBOX_OLDEST_TESTED)
    if parsed is None:
        return [
            CheckResult("version", Status.FAIL, f"Could not read the server version from {git_version!r}.")
        ]
    shown = "{}.{}.{}".format(*parsed)
    if parsed[:2] < MIN_KUBERNETES:
        reason = (
            f"Kubernetes {shown} is older than {minimum}. CVMs originally needed {original} or newer, but "
            "this product uses APIs of newer releases (events.k8s.io/v1, node.k8s.io/v1, Pod Security "
            f"Admission, GA in 1.25). Upgrade the cluster to {minimum} or newer."
        )
        return [CheckResult("version", Status.FAIL, reason)]
    if parsed[:2] < SYSBOX_OLDEST_TESTED:
        reason = (
            f"Kubernetes {shown} meets the product's minimum ({minimum}; CVMs originally needed {original}), "
            f"but sysbox is no longer tested on releases older than {tested}. Plan an upgrade."
        )
        return [CheckResult("version", Status.WARN, reason)]
    reason = (
        f"Kubernetes {shown} meets the product's minimum of {minimum} (the original CVM requirement was "
        f"{original}) and is a release sysbox is tested on."
    )
    return [CheckResult("version", Status.PASS, reason)]


def _node_name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def _node_labels(node: Mapping[str, Any]) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})


def _node_info(node: Mapping[str, Any]) -> dict[str, Any]:
    return dict((node.get("status") or {}).get("nodeInfo") or {})


def node_results(
    nodes: list[Mapping[str, Any]], selector: Mapping[str, str], tolerations: list[Mapping[str, Any]]
) -> tuple[list[CheckResult], list[Mapping[str, Any]]]:
    """Check 2: a verdict per node CVMs may land on; the others are listed as not used for CVMs.

    Returns the rows and the nodes that passed (the capacity check counts those).
    """
    results: list[CheckResult] = []
    usable: list[Mapping[str, Any]] = []
    for node in sorted(nodes, key=_node_name):
        name = _node_name(node)
        excluded = node_exclusion(node, selector, tolerations)
        if excluded:
            results.append(CheckResult("nodes", Status.INFO, f"Not used for CVMs. {excluded}", name))
            continue
        verdict = cvm_node_verdict(_node_info(node))
        reason = " ".join(finding.reason for finding in verdict.findings)
        results.append(CheckResult("nodes", verdict.status, reason, name))
        if verdict.status != Status.FAIL:
            usable.append(node)
    if not any(r.status != Status.INFO for r in results):
        what = "the CVM node selector and tolerations" if selector or tolerations else "CVMs"
        results.append(
            CheckResult(
                "nodes",
                Status.FAIL,
                f"No schedulable node is available to {what}; CVM pods would stay Pending.",
            )
        )
    return results, usable


def injection_webhooks(configurations: Iterable[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(configuration name, webhook) for every webhook that injects a mesh proxy into pods."""
    found = []
    for configuration in configurations:
        config_name = str((configuration.get("metadata") or {}).get("name", ""))
        for webhook in configuration.get("webhooks") or []:
            service = (webhook.get("clientConfig") or {}).get("service") or {}
            names = " ".join((config_name, str(webhook.get("name", "")), str(service.get("name", ""))))
            if _INJECTOR.search(names) is None:
                continue
            rules = webhook.get("rules") or []
            touches_pods = not rules or any(
                {"pods", "*"} & set(rule.get("resources") or [])
                and {"CREATE", "*"} & set(rule.get("operations") or [])
                for rule in rules
            )
            if touches_pods:
                found.append((config_name, webhook))
    return found


def proxy_results(
    namespace: str,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    configurations: Iterable[Mapping[str, Any]],
    istio_installed: bool,
) -> list[CheckResult]:
    """Check 4: would Istio (or another mesh) inject a proxy into the environments' pods?"""
    labels = {**namespace_labels, NAMESPACE_NAME_LABEL: namespace}
    reaching: list[str] = []
    injection = labels.get(ISTIO_INJECTION_LABEL)
    if injection == "enabled":
        reaching.append(f"the namespace is labelled {ISTIO_INJECTION_LABEL}=enabled (sidecar injection)")
    if ISTIO_REVISION_LABEL in labels and injection != "disabled":
        reaching.append(
            f"the namespace is labelled {ISTIO_REVISION_LABEL}={labels[ISTIO_REVISION_LABEL]} "
            "(revisioned sidecar injection)"
        )
    dataplane = labels.get(ISTIO_DATAPLANE_LABEL)
    if dataplane and dataplane != "none":
        reaching.append(f"the namespace is labelled {ISTIO_DATAPLANE_LABEL}={dataplane} (ambient mode)")
    webhooks = injection_webhooks(configurations)
    for config_name, webhook in webhooks:
        if selector_matches(webhook.get("namespaceSelector"), labels) and selector_matches(
            webhook.get("objectSelector"), pod_labels
        ):
            reaching.append(
                f"the webhook {webhook.get('name', '')} ({config_name}) selects this namespace and these pods"
            )
    why = (
        "A mesh proxy takes over the pod's traffic, so the inner container's network breaks; CVMs do not "
        "support it."
    )
    if reaching:
        reason = f"A proxy would be injected into CVM pods: {'; '.join(reaching)}. {why}"
        if labels.get(ISTIO_INJECTION_LABEL) == "enabled" or ISTIO_REVISION_LABEL in labels:
            reason += (
                f" Remove the label from namespace {namespace} (or set {ISTIO_INJECTION_LABEL}=disabled)."
            )
        return [CheckResult("proxy", Status.FAIL, reason)]
    if webhooks or istio_installed:
        names = ", ".join(sorted({name for name, _ in webhooks})) or f"the {ISTIO_NAMESPACE} namespace"
        reason = (
            f"A service mesh is installed ({names}) but none of its injection reaches namespace {namespace} "
            "or the environments' pods. Keep it that way: never label the namespace for injection. " + why
        )
        return [CheckResult("proxy", Status.WARN, reason)]
    return [
        CheckResult("proxy", Status.PASS, "No Istio or other proxy injection is installed in the cluster.")
    ]


def capacity_results(
    nodes: list[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], settings: InfrastructureSettings
) -> list[CheckResult]:
    """Check 7: per usable node, allocatable minus requested, and how many default-size CVMs still fit."""
    requested: dict[str, list[int]] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node_name or phase in {"Succeeded", "Failed"}:
            continue
        cpu, memory = pod_requests(pod)
        totals = requested.setdefault(node_name, [0, 0])
        totals[0] += cpu
        totals[1] += memory
    size_cpu, size_memory = settings.default_cpu_millicores, settings.default_memory_mib
    results = []
    total = 0
    for node in sorted(nodes, key=_node_name):
        name = _node_name(node)
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        cpu, memory = cpu_millicores(allocatable.get("cpu")), memory_mib(allocatable.get("memory"))
        used_cpu, used_memory = requested.get(name, [0, 0])
        free_cpu, free_memory = max(cpu - used_cpu, 0), max(memory - used_memory, 0)
        fit = min(free_cpu // size_cpu, free_memory // size_memory)
        total += fit
        reason = (
            f"CPU {used_cpu}m of {cpu}m requested, memory {used_memory} MiB of {memory} MiB requested: "
            f"{fit} more environment(s) of the default size ({size_cpu}m CPU, {size_memory} MiB) fit."
        )
        results.append(CheckResult("capacity", Status.INFO if fit else Status.WARN, reason, name))
    summary = (
        f"{total} more environment(s) of the default size fit on {len(results)} node(s) that can run CVMs."
    )
    results.insert(0, CheckResult("capacity", Status.INFO if total else Status.WARN, summary))
    return results


# --- the run ---------------------------------------------------------------------------------------------


def probe_pod(settings: InfrastructureSettings, node_runtime: str = "containerd") -> dict[str, Any]:
    """The pod an environment of the default size would get, built by the environments' own manifests.

    The environment, its owner and its image are never saved: the pod only goes to a server-side dry run.
    """
    from environments import manifests
    from environments.models import Environment, Image

    owner = get_user_model()(username="coderadmin", handle="coderadmin")
    image = Image(repository="ubuntu", username="coder")
    env = Environment(
        owner=owner,
        name="readiness-check",
        image=image,
        tag="24.04",
        cpu_millicores=settings.default_cpu_millicores,
        memory_mib=settings.default_memory_mib,
        disk_gib=settings.default_disk_gib,
        cvm=True,
        cvm_backend=settings.cvm_backend,
    )
    env.pk = 0
    env.assign_kubernetes_names(settings)
    return manifests.pod(env, image, settings, node_runtime)


def admission_results(
    gateway: Gateway, pod: dict[str, Any], backend: str, namespace: str
) -> list[CheckResult]:
    """Check 3: ask the API server to admit the real CVM pod (dry run: nothing is created)."""
    what = (
        "the supervising pod (privileged, hostPath /lib/modules and /usr/src)"
        if backend == CvmBackend.SUPERVISOR
        else "the sysbox RuntimeClass pod (user namespace, no privilege)"
    )
    try:
        gateway.create(pod, dry_run=True)
    except AlreadyExists:
        pass  # admission ran before the name clash, so the pod was admitted
    except (Unauthorized, Unavailable):
        raise
    except GatewayError as exc:
        hint = (
            f" Label the namespace pod-security.kubernetes.io/enforce=privileged (kubectl label namespace "
            f"{namespace} pod-security.kubernetes.io/enforce=privileged --overwrite) or lift the policy that "
            "denies it."
            if backend == CvmBackend.SUPERVISOR
            else ""
        )
        return [
            CheckResult(
                "admission",
                Status.FAIL,
                f"The API server refused a dry run of {what} in namespace {namespace}: {exc.message}{hint}",
            )
        ]
    return [
        CheckResult(
            "admission",
            Status.PASS,
            f"The API server admitted a dry run of {what} in namespace {namespace}.",
        )
    ]


def runtimeclass_results(
    runtime_class: Mapping[str, Any] | None, nodes: list[Mapping[str, Any]]
) -> tuple[list[CheckResult], str]:
    """Check 5 (RuntimeClass backend): the RuntimeClass, its nodes, and user-namespace support per node.

    Also returns the node runtime the CVM pod should be built for (``cri-o`` only when every sysbox node
    runs CRI-O).
    """
    results = []
    if runtime_class is None:
        results.append(
            CheckResult(
                "runtimeclass",
                Status.FAIL,
                f"The RuntimeClass {RUNTIME_CLASS_NAME} does not exist: install sysbox with "
                "sysbox-deploy-k8s (see the sysbox guide below).",
            )
        )
    else:
        scheduling = (runtime_class.get("scheduling") or {}).get("nodeSelector") or {}
        shown = ", ".join(f"{k}={v}" for k, v in scheduling.items()) or "no node selector"
        status = Status.PASS if scheduling else Status.WARN
        reason = f"RuntimeClass {RUNTIME_CLASS_NAME} exists (handler {runtime_class.get('handler', '')}); "
        reason += f"it schedules pods onto nodes with {shown}."
        if not scheduling:
            reason += " Without scheduling, CVM pods may land on nodes without sysbox."
        results.append(CheckResult("runtimeclass", status, reason))
    key, value = SYSBOX_RUNNING_LABEL
    running = [node for node in nodes if _node_labels(node).get(key) == value]
    runtimes = set()
    for node in sorted(nodes, key=_node_name):
        labels = _node_labels(node)
        info = _node_info(node)
        name = _node_name(node)
        if labels.get(key) == value:
            runtime_name, _ = container_runtime(str(info.get("containerRuntimeVersion", "")))
            runtimes.add(runtime_name)
            ok, why = supports_user_namespaces(info)
            results.append(CheckResult("runtimeclass", Status.PASS if ok else Status.FAIL, why, name))
        elif labels.get(SYSBOX_INSTALL_LABEL[0]) == SYSBOX_INSTALL_LABEL[1]:
            results.append(
                CheckResult(
                    "runtimeclass",
                    Status.WARN,
                    f"Labelled {SYSBOX_INSTALL_LABEL[0]}={SYSBOX_INSTALL_LABEL[1]} but not yet "
                    f"{key}={value}: the sysbox installer has not finished (or failed) on this node.",
                    name,
                )
            )
    if not running:
        results.append(
            CheckResult(
                "runtimeclass",
                Status.FAIL,
                f"No node is labelled {key}={value}: sysbox runs on no node yet.",
            )
        )
    node_runtime = "cri-o" if runtimes == {"cri-o"} else "containerd"
    return results, node_runtime


def supports_user_namespaces(info: Mapping[str, Any]) -> tuple[bool, str]:
    """:func:`nodeinfo.supports_host_users` for a ``nodeInfo`` dict."""
    return supports_host_users(
        str(info.get("kubeletVersion", "")), str(info.get("containerRuntimeVersion", ""))
    )


def storage_results(gateway: Gateway, storage_class: str) -> list[CheckResult]:
    """Check 6b: the configured storage class exists, or (blank) the cluster has a default one."""
    if storage_class:
        if gateway.get_or_none("StorageClass", None, storage_class) is None:
            return [
                CheckResult(
                    "storage",
                    Status.FAIL,
                    f"The storage class {storage_class} does not exist; environments' volumes would stay "
                    "Pending. Pick one that kubectl get storageclass lists.",
                )
            ]
        return [CheckResult("storage", Status.PASS, f"The storage class {storage_class} exists.")]
    try:
        classes = gateway.list("StorageClass").get("items") or []
    except Forbidden as exc:
        return [
            CheckResult(
                "storage",
                Status.WARN,
                "No storage class is set and the product may not list storage classes to find the default "
                f"({exc.message}). Name a storage class in the settings.",
            )
        ]
    for item in classes:
        annotations = (item.get("metadata") or {}).get("annotations") or {}
        if any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS):
            name = item["metadata"]["name"]
            return [
                CheckResult(
                    "storage", Status.PASS, f"No storage class is set: the cluster default {name} is used."
                )
            ]
    return [
        CheckResult(
            "storage",
            Status.FAIL,
            "No storage class is set and the cluster has no default one; environments' volumes would stay "
            "Pending. Name a storage class in the settings.",
        )
    ]


def permission_results(gateway: Gateway, namespace: str) -> list[CheckResult]:
    """Check 6c: one SelfSubjectAccessReview per verb the product needs (the list its RBAC is built from)."""
    reviews = access_reviews(namespace)
    denied = []
    for review in reviews:
        answer = gateway.create(review.body())
        if not (answer.get("status") or {}).get("allowed"):
            denied.append(review)
    if not denied:
        return [
            CheckResult(
                "permissions",
                Status.PASS,
                f"The product's service account holds all {len(reviews)} permissions it needs.",
            )
        ]
    results = []
    for review in denied:
        attributes = review.attributes
        where = f" in namespace {attributes['namespace']}" if "namespace" in attributes else " cluster-wide"
        resource = review.rule.resource + (f" ({review.rule.api_group})" if review.rule.api_group else "")
        results.append(
            CheckResult(
                "permissions",
                Status.FAIL,
                f"May not {review.verb} {resource}{where}. Needed to: {review.rule.reason} "
                "Apply the RBAC manifests the product ships.",
                f"{review.verb} {review.rule.resource}",
            )
        )
    return results


class _Aborted(Exception):
    """The cluster stopped answering (or rejects us): the run ends with what it has."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def connection_result(exc: GatewayError) -> CheckResult:
    """The row shown when the cluster cannot be used at all."""
    if isinstance(exc, Unauthorized):
        reason = (
            f"Unauthorized: the cluster rejected the product's credentials ({exc.message}). Check the "
            "kubeconfig or the service account token."
        )
    else:
        reason = f"Unavailable: the Kubernetes API could not be reached ({exc.message})."
    return CheckResult("cluster", Status.FAIL, reason)


def run_checks(
    gateway: Gateway, settings: InfrastructureSettings, progress: Progress | None = None
) -> Report:
    """Run every check; ``progress(done, total, label)`` is called before each step."""
    report = Report()
    namespace = settings.environments_namespace
    backend = settings.cvm_backend
    steps = 9
    done = 0

    def step(label: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, steps, label)
        done += 1

    def guarded(check: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
        try:
            return fn()
        except (Unauthorized, Unavailable) as exc:
            raise _Aborted(exc) from exc
        except GatewayError as exc:
            why = (
                "The product's service account may not read this"
                if isinstance(exc, Forbidden)
                else "The API server answered with an error"
            )
            return [CheckResult(check, Status.FAIL, f"{why}: {exc.message}")]

    try:
        step("Kubernetes version")
        try:
            version = gateway.version()
        except (Unauthorized, Unavailable) as exc:
            raise _Aborted(exc) from exc
        report.cluster_version = str(version.get("gitVersion", ""))
        report.simulated = is_simulated(version)
        report.results.append(
            CheckResult("cluster", Status.PASS, f"Connected to Kubernetes {report.cluster_version}.")
        )
        if report.simulated:
            report.results.append(
                CheckResult("cluster", Status.INFO, "This is the built-in simulated cluster, not a real one.")
            )
        report.results += version_results(version)

        step("Nodes")
        nodes: list[dict[str, Any]] = []
        runtime_class: dict[str, Any] | None = None
        runtime_class_error: list[CheckResult] = []
        if backend == CvmBackend.RUNTIMECLASS:

            def read_runtime_class() -> list[CheckResult]:
                nonlocal runtime_class
                runtime_class = gateway.get_or_none("RuntimeClass", None, RUNTIME_CLASS_NAME)
                return []

            runtime_class_error = guarded("runtimeclass", read_runtime_class)

        def read_nodes() -> list[CheckResult]:
            nodes.extend(gateway.list("Node").get("items") or [])
            report.cluster_cidrs = sorted(
                {cidr for node in nodes for cidr in _pod_cidrs(node)} | set(service_cidrs(gateway))
            )
            selector = dict(settings.cvm_node_selector or {})
            tolerations = list(settings.cvm_tolerations or [])
            if backend == CvmBackend.RUNTIMECLASS:
                scheduling = (runtime_class or {}).get("scheduling") or {}
                selector = {**selector, **(scheduling.get("nodeSelector") or {})}
                tolerations += scheduling.get("tolerations") or []
            rows, usable = node_results(nodes, selector, tolerations)
            usable_nodes.extend(usable)
            return rows

        usable_nodes: list[Mapping[str, Any]] = []
        node_rows = guarded("nodes", read_nodes)

        step("Environments namespace")
        namespace_obj: dict[str, Any] | None = None

        def read_namespace() -> list[CheckResult]:
            nonlocal namespace_obj
            namespace_obj = gateway.get_or_none("Namespace", None, namespace)
            if namespace_obj is None:
                report.namespace_missing = True
                return [
                    CheckResult(
                        "namespace",
                        Status.FAIL,
                        f"The namespace {namespace} does not exist. Create it here, or with kubectl create "
                        f"namespace {namespace}.",
                    )
                ]
            return [CheckResult("namespace", Status.PASS, f"The namespace {namespace} exists.")]

        namespace_rows = guarded("namespace", read_namespace)

        step("sysbox RuntimeClass")
        node_runtime = "containerd"
        if runtime_class_error:
            runtime_rows = runtime_class_error
        elif backend == CvmBackend.RUNTIMECLASS:
            runtime_rows, node_runtime = runtimeclass_results(runtime_class, nodes)
        else:
            runtime_rows = [
                CheckResult(
                    "runtimeclass",
                    Status.INFO,
                    "Not needed: the supervising-container backend brings its own sysbox.",
                )
            ]

        step("Dry run of the CVM pod")
        pod = probe_pod(settings, node_runtime)
        if namespace_obj is None:
            admission_rows = [
                CheckResult(
                    "admission", Status.INFO, f"Not checked: the namespace {namespace} does not exist yet."
                )
            ]
        else:
            admission_rows = guarded("admission", lambda: admission_results(gateway, pod, backend, namespace))

        step("Istio and other proxies")
        namespace_labels = ((namespace_obj or {}).get("metadata") or {}).get("labels") or {}
        pod_labels = (pod.get("metadata") or {}).get("labels") or {}

        def read_proxies() -> list[CheckResult]:
            configurations = gateway.list("MutatingWebhookConfiguration").get("items") or []
            istio = gateway.get_or_none("Namespace", None, ISTIO_NAMESPACE) is not None
            return proxy_results(namespace, namespace_labels, pod_labels, configurations, istio)

        proxy_rows = guarded("proxy", read_proxies)

        step("Storage class")
        storage_rows = guarded("storage", lambda: storage_results(gateway, settings.storage_class))

        step("Permissions")
        permission_rows = guarded("permissions", lambda: permission_results(gateway, namespace))

        step("Capacity")

        def read_capacity() -> list[CheckResult]:
            pods = gateway.list("Pod").get("items") or []
            return capacity_results(usable_nodes, pods, settings)

        capacity_rows = guarded("capacity", read_capacity)
    except _Aborted as aborted:
        report.results = [r for r in report.results if r.check != "cluster"]
        report.results.insert(0, connection_result(aborted.error))
        if progress is not None:
            progress(steps, steps, "Done")
        return report

    report.results += (
        node_rows
        + admission_rows
        + proxy_rows
        + runtime_rows
        + namespace_rows
        + storage_rows
        + permission_rows
        + capacity_rows
    )
    if progress is not None:
        progress(steps, steps, "Done")
    return report


def service_cidrs(gateway: Gateway) -> list[str]:
    """The cluster's service ranges from ServiceCIDR objects; empty where the API is missing or denied."""
    try:
        items = gateway.list("ServiceCIDR").get("items") or []
    except (NotFound, Forbidden):
        return []
    return [str(cidr) for item in items for cidr in (item.get("spec") or {}).get("cidrs") or []]


def _pod_cidrs(node: Mapping[str, Any]) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if spec.get("podCIDR"):
        cidrs.append(spec["podCIDR"])
    return [str(c) for c in cidrs]
