"""Cluster work of an environment: build, stop, delete. Called by the thin Celery tasks.

Every function takes the environment id and the ``generation`` its task was enqueued with; when
the row has moved on (another action bumped the generation) the work is stale and nothing is done.
Each step is idempotent (create-or-get, delete-if-exists), so a task that runs twice, or again
after a crash, converges to the same objects.

Cluster refusals that retrying cannot fix (quota, Pod Security, invalid objects, missing
permissions) turn the environment to Error at once with a human reason; ``Unavailable`` propagates
so the task retries with backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from environments import manifests, services
from environments.models import Environment
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import labels
from infrastructure.models import CvmBackend, InfrastructureSettings

log = logging.getLogger(__name__)

SYSBOX_READY_LABEL = "sysbox-runtime=running"
# Waiting for a replaced pod to go: polls start fast and back off, bounded by the grace period.
GONE_POLL_FIRST = 0.2
GONE_POLL_MAX = 2.0
GONE_EXTRA_SECONDS = 30
NODE_RUNTIME_CACHE_SECONDS = 60.0

# Per API server: (when, runtime); a cluster-scoped list once a minute at most, never per environment.
_node_runtime_cache: dict[str, tuple[float, str]] = {}

BUILD_STATES = frozenset({State.CREATING, State.BUILDING, State.UNKNOWN})
STOP_STATES = frozenset({State.TURNING_OFF, State.OFF, State.ERROR})


class PodStillTerminating(gw.Unavailable):
    """The old pod did not go within its grace period: retry the build later."""


def _load(environment_id: int, generation: int, states: frozenset[State]) -> Environment | None:
    env = Environment.objects.select_related("owner", "image").filter(pk=environment_id).first()
    if env is None or env.generation != generation or env.state not in states:
        log.info("environment %s generation %s: nothing to do (stale or gone)", environment_id, generation)
        return None
    return env


def refusal_reason(exc: gw.GatewayError, kind: str) -> str | None:
    """A human reason for a refusal retrying cannot fix; None when retrying may help."""
    message = exc.message
    if isinstance(exc, gw.QuotaExceeded):
        return f"the namespace quota is exhausted: {message}"
    if isinstance(exc, gw.PodSecurityDenied):
        if "privileged" in message or "hostPath" in message:
            return f"the namespace forbids privileged pods: {message}"
        return f"the namespace's Pod Security policy refuses the pod: {message}"
    if isinstance(exc, gw.Unauthorized):
        return f"the cluster rejected coderadmin's credentials: {message}"
    if isinstance(exc, gw.Forbidden):
        return f"coderadmin is not allowed to create the {kind}: {message}"
    if isinstance(exc, gw.Invalid):
        return f"the cluster refused the {kind}: {message}"
    return None


def node_runtime(gateway: gw.Gateway) -> str:
    """How the sysbox nodes enable user namespaces: CRI-O only when every ready sysbox node runs it."""
    key = gateway.client.configuration.host
    cached = _node_runtime_cache.get(key)
    if cached and time.monotonic() - cached[0] < NODE_RUNTIME_CACHE_SECONDS:
        return cached[1]
    nodes = gateway.list("Node", label_selector=SYSBOX_READY_LABEL).get("items") or []
    runtimes = {
        (node.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion") or "").split(":")[0]
        for node in nodes
    }
    value = manifests.NODE_RUNTIME_CRIO if runtimes == {"cri-o"} else manifests.NODE_RUNTIME_CONTAINERD
    _node_runtime_cache[key] = (time.monotonic(), value)
    return value


def _objects(env: Environment, settings: InfrastructureSettings, gateway: gw.Gateway) -> list[dict[str, Any]]:
    runtime = manifests.NODE_RUNTIME_CONTAINERD
    if env.cvm and (env.cvm_backend or settings.cvm_backend) == CvmBackend.RUNTIMECLASS:
        runtime = node_runtime(gateway)
    objects = manifests.environment_objects(env, env.image, settings, runtime)
    objects[-1]["metadata"]["annotations"][labels.ANNOTATION_GENERATION] = str(env.generation)
    return objects


def pod_generation(pod: dict[str, Any]) -> int | None:
    value = (pod.get("metadata", {}).get("annotations") or {}).get(labels.ANNOTATION_GENERATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _create(gateway: gw.Gateway, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create-or-get, creating the namespace when it is missing (first environment ever)."""
    try:
        return gateway.create_or_get(obj)
    except gw.NotFound:
        gateway.ensure_namespace(obj["metadata"]["namespace"])
        return gateway.create_or_get(obj)


def _wait_gone(gateway: gw.Gateway, env: Environment, uid: str, deadline_seconds: float) -> None:
    """Poll the one pod being replaced until it is gone (a ReadWriteOnce volume cannot attach twice)."""
    deadline = time.monotonic() + deadline_seconds
    delay = GONE_POLL_FIRST
    while True:
        current = gateway.get_or_none("Pod", env.namespace, env.pod_name)
        if current is None or current["metadata"].get("uid") != uid:
            return
        if time.monotonic() >= deadline:
            raise PodStillTerminating(f"the previous pod {env.pod_name} is still terminating")
        time.sleep(delay)
        delay = min(delay * 2, GONE_POLL_MAX)


def _replace_old_pod(gateway: gw.Gateway, env: Environment, old: dict[str, Any], grace: int) -> None:
    uid = old["metadata"]["uid"]
    gateway.delete_if_exists("Pod", env.namespace, env.pod_name, uid=uid)
    if env.registry_secret_name:
        gateway.delete_if_exists("Secret", env.namespace, env.registry_secret_name)
    _wait_gone(gateway, env, uid, grace + GONE_EXTRA_SECONDS)


def build(environment_id: int, generation: int, gateway: gw.Gateway | None = None) -> None:
    """Create claim, pull secret and network policy, then the pod; never wait for the claim to bind."""
    env = _load(environment_id, generation, BUILD_STATES)
    if env is None:
        return
    gateway = gateway or gw.Gateway()
    settings = InfrastructureSettings.load()
    grace = settings.cvm_termination_grace_seconds if env.cvm else 30
    objects = _objects(env, settings, gateway)
    pod_manifest = objects[-1]
    kind = "Pod"
    try:
        if generation > 1:
            # Start or rebuild: the pod of an earlier build may still be there (or terminating).
            old = gateway.get_or_none("Pod", env.namespace, env.pod_name)
            if old is not None and pod_generation(old) != generation:
                _replace_old_pod(gateway, env, old, grace)
        for obj in objects[:-1]:
            kind = obj["kind"]
            stored, created = _create(gateway, obj)
            if kind == "PersistentVolumeClaim" and not created:
                _grow_claim(gateway, env, stored)
        kind = "Pod"
        pod, created = _create(gateway, pod_manifest)
        if not created and (pod_generation(pod) != generation or pod["metadata"].get("deletionTimestamp")):
            _replace_old_pod(gateway, env, pod, grace)
            pod = gateway.create(pod_manifest)
        if env.image.has_registry_credentials:
            kind = "Secret"
            owner = {"metadata": {"ownerReferences": [manifests.secret_owner_reference(pod)]}}
            gateway.patch("Secret", env.namespace, env.registry_secret_name, owner)
    except gw.GatewayError as exc:
        reason = refusal_reason(exc, kind)
        if reason is None:
            raise
        services.environment_mark_error(env.pk, reason=reason, generation=generation)
        return
    if services.environment_mark_built(env.pk, generation=generation) is None:
        # Stopped, cancelled or deleted while this ran: its task may have missed the new pod.
        gateway.delete_if_exists("Pod", env.namespace, env.pod_name, uid=pod["metadata"]["uid"])


def _grow_claim(gateway: gw.Gateway, env: Environment, claim: dict[str, Any]) -> None:
    """A rebuild with more disk asks the claim for more (storage classes that allow expansion)."""
    wanted = f"{env.disk_gib}Gi"
    current = claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    if current != wanted and current is not None and _gib(current) < env.disk_gib:
        patch = {"spec": {"resources": {"requests": {"storage": wanted}}}}
        gateway.patch("PersistentVolumeClaim", env.namespace, env.pvc_name, patch)


def _gib(quantity: str) -> float:
    units = {"Gi": 1, "Mi": 1 / 1024, "Ti": 1024, "G": 1e9 / 2**30, "M": 1e6 / 2**30, "T": 1e12 / 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**30


def stop(environment_id: int, generation: int, gateway: gw.Gateway | None = None) -> None:
    """Delete the pod (and its pull secret), keep the claim: after Stop, Cancel, or an Error. Off
    (after Stop) when the pod is gone: at once if it already was, else when the watcher sees it go."""
    env = _load(environment_id, generation, STOP_STATES)
    if env is None:
        return
    gateway = gateway or gw.Gateway()
    existed = gateway.delete_if_exists("Pod", env.namespace, env.pod_name)
    if env.registry_secret_name:
        gateway.delete_if_exists("Secret", env.namespace, env.registry_secret_name)
    if not existed and env.state == State.TURNING_OFF:
        services.environment_apply_pod_state(env.pk, generation=generation, state=services.PodState.GONE)


def delete(environment_id: int, generation: int, gateway: gw.Gateway | None = None) -> None:
    """Delete pod, secret, policy and claim; the row goes once the pod is gone (now, or when the
    watcher reports it and this runs again)."""
    env = _load(environment_id, generation, frozenset({State.DELETING}))
    if env is None:
        return
    gateway = gateway or gw.Gateway()
    pod_existed = gateway.delete_if_exists("Pod", env.namespace, env.pod_name)
    for kind, name in (
        ("Secret", env.registry_secret_name),
        ("NetworkPolicy", env.network_policy_name),
        ("PersistentVolumeClaim", env.pvc_name),
    ):
        if name:
            gateway.delete_if_exists(kind, env.namespace, name)
    if not pod_existed:
        services.environment_finish_delete(env.pk, generation=generation)
