"""The simulated cluster's node agents: scheduler, volume binder and kubelet in one controller.

One thread, woken by the store's change notifications and by its own timers (no polling). It
plays the parts a product meets on a real cluster, with the real objects and wording:

- the default scheduler binds pending pods (``Scheduled``), or leaves them Pending with a
  ``FailedScheduling`` event and ``PodScheduled=False``, retried whenever nodes, pods or claims
  change;
- the persistent volume controller binds claims: ``Immediate`` classes at once,
  ``WaitForFirstConsumer`` ones when their first pod is scheduled;
- the kubelet mounts volumes (``FailedMount`` for a missing Secret or ConfigMap, ``Multi-Attach``
  for a ReadWriteOnce claim still held by another pod), pulls images as the profile says
  (``ErrImagePull``/``ImagePullBackOff``, ``InvalidImageName``), refuses missing environment
  references (``CreateContainerConfigError``), starts containers, honours readiness probes and
  restart policies (``CrashLoopBackOff``, or phase Failed/Succeeded with the exit code and the
  termination message), plays the supervising container (``supervisor_sim``) and ends gracefully
  deleted pods once their containers have stopped.

Durations come from the profile's timing through the clock.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infrastructure.supervisor import contract

from . import scheduler, supervisor_sim
from .clock import Clock
from .errors import APIError
from .profiles import (
    DEFAULT_CLASS_ANNOTATION,
    PULL_CERTIFICATE_ERROR,
    PULL_INVALID,
    PULL_OK,
    ImageBehaviour,
    Profile,
    valid_reference,
)
from .store import Store, WatchEvent

log = logging.getLogger(__name__)

SCHEDULER = "default-scheduler"
KUBELET = "kubelet"
VOLUME_CONTROLLER = "persistentvolume-controller"
ATTACH_CONTROLLER = "attachdetach-controller"
MAX_BACKOFF = 300.0
DEFAULT_PROBE_PERIOD = 10.0
_WATCHED = frozenset(
    {"pods", "nodes", "persistentvolumeclaims", "secrets", "configmaps", "runtimeclasses.node.k8s.io"}
)


def repository(image: str) -> str:
    """The fully qualified repository of an image reference, as containerd reports it."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: -(len(last) - last.index(":"))]
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    behaviour: ImageBehaviour
    init: bool = False
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    pulled: bool = False
    container_id: str = ""
    marker: bool = False  # the supervisor wrote the ready marker
    probe_passed: bool = False
    pull_backoff: float = 0.0
    crash_backoff: float = 0.0
    blocked: str = ""  # waiting for a Secret/ConfigMap the environment refers to

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def image(self) -> str:
        return self.spec.get("image", "")

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> bool:
        return "terminated" in self.state


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    node: str
    containers: list[ContainerRun]
    init_containers: list[ContainerRun]
    generation: int = 0  # bumped to cancel pending timers (stop)
    stage: str = "volumes"
    start_time: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    phase: str = "Pending"
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)
    stopping: bool = False
    stopped: bool = False  # containers gone, volumes released; the object may linger on finalizers
    blocked: str = ""  # a volume problem the pod waits on

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


class Kubelet:
    """Scheduler, volume binder and kubelet for every node of a profile."""

    def __init__(self, store: Store, profile: Profile, clock: Clock | None = None) -> None:
        self.store = store
        self.profile = profile
        self.timing = profile.timing
        self.clock = clock or Clock.realistic()
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._runs: dict[str, PodRun] = {}
        self._unschedulable: set[tuple[str, str]] = set()
        self._scheduling: set[tuple[str, str]] = set()
        self._events: dict[tuple[str, ...], tuple[str, str]] = {}
        self._next_ip: dict[str, int] = {}
        self._images: dict[str, set[str]] = {}
        # Every pod as last stored (read-only references kept up to date by the subscription), so
        # scheduling does not copy the whole pod list for each decision.
        self._pods: dict[str, dict[str, Any]] = {}
        self._cache_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self.store.finish_graceful_deletion = False
        with self.store.lock:
            self._unsubscribe = self.store.subscribe(self._on_change)
            pods = {pod["metadata"]["uid"]: pod for pod in self.store.list("pods")}
        with self._cache_lock:
            self._pods = pods
        self._thread = threading.Thread(target=self._loop, name="simulated-kubelet", daemon=True)
        self._thread.start()
        self._queue.put(("resync",))

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._thread = None
        self.store.finish_graceful_deletion = True

    def _on_change(self, event: WatchEvent) -> None:
        if event.rt.key not in _WATCHED:
            return
        meta = event.obj["metadata"]
        if event.rt.key == "pods":
            with self._cache_lock:
                if event.type == "DELETED":
                    self._pods.pop(meta["uid"], None)
                else:
                    self._pods[meta["uid"]] = event.obj
        self._queue.put((event.rt.key, event.type, meta.get("namespace", ""), meta["name"], meta["uid"]))

    def _after(self, seconds: float, action: Callable[[], None]) -> None:
        due = time.monotonic() + self.clock.real_seconds(seconds)
        heapq.heappush(self._timers, (due, next(self._seq), action))

    def _later(self, run: PodRun, seconds: float, action: Callable[[], None]) -> None:
        """A timer for one pod that does nothing once the pod is stopping or gone."""
        generation = run.generation

        def guarded() -> None:
            if self._runs.get(run.uid) is run and run.generation == generation:
                action()

        self._after(seconds, guarded)

    def _loop(self) -> None:
        while True:
            timeout = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ()
            if item is None:
                return
            try:
                if item:
                    self._handle(item)
                while self._timers and self._timers[0][0] <= time.monotonic():
                    heapq.heappop(self._timers)[2]()
            except Exception:
                log.exception("simulated kubelet failed")

    # ------------------------------------------------------------------ dispatch

    def _handle(self, item: tuple[Any, ...]) -> None:
        if item[0] == "resync":
            self._heartbeat()
            for pod in self.store.list("pods"):
                self._sync_pod(pod)
            for claim in self.store.list("persistentvolumeclaims"):
                self._claim_added(claim)
            return
        resource, kind, namespace, name, uid = item
        if resource == "pods":
            if kind == "DELETED":
                self._forget(uid)
                self._retry_blocked()
            else:
                pod = self._get("pods", namespace, name)
                if pod is not None:
                    self._sync_pod(pod)
                    if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") in (
                        scheduler.TERMINAL_PHASES
                    ):
                        self._retry_blocked()
            return
        if resource == "persistentvolumeclaims" and kind == "ADDED":
            claim = self._get("persistentvolumeclaims", namespace, name)
            if claim is not None:
                self._claim_added(claim)
        self._retry_blocked()

    def _retry_blocked(self) -> None:
        for namespace, name in sorted(self._unschedulable - self._scheduling):
            self._schedule_later(namespace, name, 0.0)
        for run in list(self._runs.values()):
            if run.blocked:
                self._mount(run)
            for container in run.containers + run.init_containers:
                if container.blocked:
                    self._create(run, container)

    def _cached_pods(self) -> list[dict[str, Any]]:
        with self._cache_lock:
            return list(self._pods.values())

    def _get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.store.get(resource, namespace, name)
        except APIError:
            return None

    def _sync_pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        run = self._runs.get(meta["uid"])
        if meta.get("deletionTimestamp"):
            self._unschedulable.discard(key)
            if run is not None and not run.stopping:
                self._stop_pod(run, pod)
            elif run is None and spec.get("nodeName"):
                self._remove(pod)
            return
        if run is not None:
            return
        if not spec.get("nodeName"):
            # Unschedulable pods are retried when the cluster changes, not on their own updates.
            waiting = key in self._scheduling or key in self._unschedulable
            if spec.get("schedulerName", SCHEDULER) == SCHEDULER and not waiting:
                self._schedule_later(*key, self.timing.schedule)
            return
        if pod["status"].get("phase") in scheduler.TERMINAL_PHASES:
            return
        if not self._adopt(pod):
            self._admit(pod)

    def _forget(self, uid: str) -> None:
        run = self._runs.pop(uid, None)
        if run is not None:
            run.generation += 1
        self._unschedulable = {key for key in self._unschedulable if self._get("pods", *key) is not None}

    # ------------------------------------------------------------------ events

    def _event(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = KUBELET,
        host: str = "",
        field_path: str = "",
    ) -> None:
        """Record a core/v1 Event; a repeat of the same one bumps its count, as the real recorder does."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (meta["uid"], component, reason, message, field_path)
        now = self.clock.timestamp()
        known = self._events.get(key)
        if known is not None:
            existing = self._get("events", *known)
            if existing is not None:
                existing["count"] = existing.get("count", 1) + 1
                existing["lastTimestamp"] = now
                existing["metadata"].pop("resourceVersion", None)
                self.store.update("events", existing)
                return
        involved = {
            "kind": obj.get("kind", "Pod"),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj.get("apiVersion", "v1"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source = {"component": component, **({"host": host} if host else {})}
        event = {
            "metadata": {"name": f"{meta['name']}.{_digest(f'{key}{now}{next(self._seq)}')[:16]}"},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            # Set so the events.k8s.io/v1 view (where it is required) is complete.
            "eventTime": self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        try:
            created = self.store.create("events", event, namespace)
        except APIError:
            log.debug("event %s for %s not recorded", reason, meta["name"])
            return
        self._events[key] = (namespace, created["metadata"]["name"])

    def _container_event(
        self, run: PodRun, container: ContainerRun, reason: str, message: str, type_: str = "Normal"
    ):
        pod = self._get("pods", *run.key)
        if pod is None:
            return
        kind = "initContainers" if container.init else "containers"
        self._event(pod, reason, message, type_, host=run.node, field_path=f"spec.{kind}{{{container.name}}}")

    # ------------------------------------------------------------------ nodes

    def _heartbeat(self) -> None:
        now = self.clock.timestamp()
        for node in self.store.list("nodes"):
            for condition in node.get("status", {}).get("conditions") or []:
                condition["lastHeartbeatTime"] = now
                condition.setdefault("lastTransitionTime", now)
            node["metadata"].pop("resourceVersion", None)
            self.store.update_status("nodes", node)

    def _node(self, name: str) -> dict[str, Any] | None:
        return self._get("nodes", None, name)

    # ------------------------------------------------------------------ scheduling

    def _schedule_later(self, namespace: str, name: str, delay: float) -> None:
        self._scheduling.add((namespace, name))

        def attempt() -> None:
            self._scheduling.discard((namespace, name))
            self._schedule(namespace, name)

        self._after(delay, attempt)

    def _claim_problem(self, pod: dict[str, Any]) -> str:
        """A claim the pod cannot be scheduled with, in the scheduler's words, or ''."""
        namespace = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or []:
            source = volume.get("persistentVolumeClaim")
            if not source:
                continue
            claim = self._get("persistentvolumeclaims", namespace, source.get("claimName", ""))
            if claim is None:
                return f'persistentvolumeclaim "{source.get("claimName", "")}" not found'
            if claim["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim["metadata"]["name"]}" is being deleted'
            if (
                claim["status"].get("phase") != "Bound"
                and self._binding_mode(claim) != "WaitForFirstConsumer"
            ):
                return "pod has unbound immediate PersistentVolumeClaims"
        return ""

    def _schedule(self, namespace: str, name: str) -> None:
        pod = self._get("pods", namespace, name)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            self._unschedulable.discard((namespace, name))
            return
        nodes = self.store.list("nodes")
        problem = self._claim_problem(pod)
        if problem:
            total = len(nodes)
            message = (
                f"0/{total} nodes are available: {problem}. "
                f"preemption: 0/{total} nodes are available: {total} {scheduler.NOT_HELPFUL}."
            )
            decision = scheduler.Decision(None, message)
        else:
            classes = {rc["metadata"]["name"]: rc for rc in self.store.list("runtimeclasses.node.k8s.io")}
            decision = scheduler.schedule(pod, nodes, self._cached_pods(), classes)
        if decision.node_name is None:
            self._unschedulable.add((namespace, name))
            self._set_scheduled_condition(pod, "False", "Unschedulable", decision.message)
            self._event(pod, "FailedScheduling", decision.message, "Warning", SCHEDULER)
            return
        self._unschedulable.discard((namespace, name))
        self._bind_claims(pod, decision.node_name)
        with self.store.lock:
            current = self._get("pods", namespace, name)
            if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                return
            current["spec"]["nodeName"] = decision.node_name
            current["metadata"].pop("resourceVersion", None)
            bound = self.store.update("pods", current)
        self._set_scheduled_condition(bound, "True")
        self._event(
            bound,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {decision.node_name}",
            "Normal",
            SCHEDULER,
        )

    def _set_scheduled_condition(
        self, pod: dict[str, Any], status: str, reason: str = "", message: str = ""
    ) -> None:
        with self.store.lock:
            current = self._get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                return
            conditions = current["status"].get("conditions") or []
            previous = next((c for c in conditions if c["type"] == "PodScheduled"), {})
            if (previous.get("status"), previous.get("message", "")) == (status, message):
                return
            conditions = [c for c in conditions if c["type"] != "PodScheduled"]
            condition = {
                "type": "PodScheduled",
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": self.clock.timestamp(),
            }
            if reason:
                condition.update(reason=reason, message=message)
            conditions.append(condition)
            current["status"]["conditions"] = conditions
            current["metadata"].pop("resourceVersion", None)
            self.store.update_status("pods", current)

    # ------------------------------------------------------------------ volumes (claims)

    def _storage_class(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        name = claim["spec"].get("storageClassName")
        classes = self.store.list("storageclasses.storage.k8s.io")
        if name is None:
            return next(
                (
                    sc
                    for sc in classes
                    if sc["metadata"].get("annotations", {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
                ),
                None,
            )
        return next((sc for sc in classes if sc["metadata"]["name"] == name), None)

    def _binding_mode(self, claim: dict[str, Any]) -> str:
        storage_class = self._storage_class(claim)
        return (storage_class or {}).get("volumeBindingMode", "Immediate")

    def _claim_added(self, claim: dict[str, Any]) -> None:
        if claim["status"].get("phase") == "Bound" or claim["spec"].get("volumeName"):
            return
        storage_class = self._storage_class(claim)
        if storage_class is None:
            name = claim["spec"].get("storageClassName")
            if name:
                message = f'storageclass.storage.k8s.io "{name}" not found'
                self._event(claim, "ProvisioningFailed", message, "Warning", VOLUME_CONTROLLER)
            else:
                message = "no persistent volumes available for this claim and no storage class is set"
                self._event(claim, "FailedBinding", message, "Normal", VOLUME_CONTROLLER)
            return
        if storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
            self._event(
                claim,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
                "Normal",
                VOLUME_CONTROLLER,
            )
            return
        namespace, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        self._after(self.timing.volume_attach, lambda: self._bind_claim(namespace, name, None))

    def _bind_claims(self, pod: dict[str, Any], node_name: str) -> None:
        for volume in pod["spec"].get("volumes") or []:
            source = volume.get("persistentVolumeClaim")
            if source:
                self._bind_claim(pod["metadata"]["namespace"], source.get("claimName", ""), node_name)

    def _bind_claim(self, namespace: str, name: str, node_name: str | None) -> None:
        claim = self._get("persistentvolumeclaims", namespace, name)
        if claim is None or claim["status"].get("phase") == "Bound":
            return
        storage_class = self._storage_class(claim)
        if storage_class is None:
            return
        provisioner = storage_class.get("provisioner", "")
        volume_name = f"pvc-{claim['metadata']['uid']}"
        self._event(
            claim,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
            "Normal",
            provisioner,
        )
        with self.store.lock:
            claim = self._get("persistentvolumeclaims", namespace, name)
            if claim is None:
                return
            annotations = claim["metadata"].setdefault("annotations", {})
            annotations.update(
                {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": provisioner,
                    "volume.kubernetes.io/storage-provisioner": provisioner,
                }
            )
            if node_name:
                annotations["volume.kubernetes.io/selected-node"] = node_name
            claim["spec"]["volumeName"] = volume_name
            claim["spec"].setdefault("storageClassName", storage_class["metadata"]["name"])
            claim["metadata"].pop("resourceVersion", None)
            claim = self.store.update("persistentvolumeclaims", claim)
            requested = (claim["spec"].get("resources") or {}).get("requests", {}).get("storage", "1Gi")
            claim["status"] = {
                "phase": "Bound",
                "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                "capacity": {"storage": requested},
            }
            claim["metadata"].pop("resourceVersion", None)
            claim = self.store.update_status("persistentvolumeclaims", claim)
        self._event(
            claim,
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume_name}",
            "Normal",
            provisioner,
        )

    # ------------------------------------------------------------------ pod start

    def _admit(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        node = self._node(spec["nodeName"])
        catalog = self.profile.images

        def runs(key: str, init: bool) -> list[ContainerRun]:
            return [
                ContainerRun(c, catalog.lookup(c.get("image", "")), init=init) for c in spec.get(key) or []
            ]

        run = PodRun(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            node=spec["nodeName"],
            containers=runs("containers", False),
            init_containers=runs("initContainers", True),
        )
        self._runs[run.uid] = run
        run.start_time = self.clock.timestamp()
        addresses = (node or {}).get("status", {}).get("addresses") or []
        run.host_ip = next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")
        self._condition(run, "PodReadyToStartContainers", "False")
        self._condition(run, "PodScheduled", "True")
        if run.init_containers:
            self._condition(
                run,
                "Initialized",
                "False",
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(c.name for c in run.init_containers)}]",
            )
        else:
            self._condition(run, "Initialized", "True")
        self._not_ready(run, "ContainersNotReady")
        self._write(run)
        self._mount(run)

    def _adopt(self, pod: dict[str, Any]) -> bool:
        """Take over a pod found running and ready (a saved state loaded again): nothing restarts."""
        status, spec = pod["status"], pod["spec"]
        statuses = {c["name"]: c for c in status.get("containerStatuses") or []}
        containers = spec.get("containers") or []
        steady = status.get("phase") == "Running" and all(
            statuses.get(c["name"], {}).get("ready") and "running" in statuses[c["name"]].get("state", {})
            for c in containers
        )
        if not steady:
            return False
        catalog = self.profile.images
        run = PodRun(
            uid=pod["metadata"]["uid"],
            namespace=pod["metadata"]["namespace"],
            name=pod["metadata"]["name"],
            node=spec["nodeName"],
            containers=[],
            init_containers=[],
            stage="containers",
            start_time=status.get("startTime", ""),
            pod_ip=status.get("podIP", ""),
            host_ip=status.get("hostIP", ""),
            phase="Running",
            conditions={c["type"]: c for c in status.get("conditions") or []},
        )
        for container in containers:
            known = statuses[container["name"]]
            run.containers.append(
                ContainerRun(
                    container,
                    catalog.lookup(container.get("image", "")),
                    state=known["state"],
                    last_state=known.get("lastState") or {},
                    restart_count=known.get("restartCount", 0),
                    pulled=True,
                    container_id=known.get("containerID", ""),
                    marker=True,
                    probe_passed=True,
                )
            )
            self._images.setdefault(run.node, set()).add(container.get("image", ""))
        for container in spec.get("initContainers") or []:
            known = next(
                (c for c in status.get("initContainerStatuses") or [] if c["name"] == container["name"]), {}
            )
            run.init_containers.append(
                ContainerRun(
                    container,
                    catalog.lookup(container.get("image", "")),
                    init=True,
                    state=known.get("state", {}),
                    pulled=True,
                    container_id=known.get("containerID", ""),
                )
            )
        if run.pod_ip:
            octet = int(run.pod_ip.rsplit(".", 1)[-1])
            self._next_ip[run.node] = max(self._next_ip.get(run.node, 1), octet - 1)
        self._runs[run.uid] = run
        return True

    def _condition(self, run: PodRun, kind: str, status: str, reason: str = "", message: str = "") -> None:
        current = run.conditions.get(kind)
        same = current is not None and current["status"] == status
        condition = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": current["lastTransitionTime"] if same else self.clock.timestamp(),
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        run.conditions[kind] = condition

    def _not_ready(self, run: PodRun, reason: str) -> None:
        waiting = [c.name for c in run.containers if not self._container_ready(c)]
        message = f"containers with unready status: [{' '.join(waiting)}]" if waiting else ""
        self._condition(run, "ContainersReady", "False", reason, message)
        self._condition(run, "Ready", "False", reason, message)

    def _mount(self, run: PodRun, retry: bool = False) -> None:
        """Volumes first: a missing Secret or ConfigMap, or a claim held elsewhere, holds the pod.

        The kubelet retries on its own period (each failure counted on the event) and at once when
        the cluster changes.
        """
        pod = self._get("pods", *run.key)
        if pod is None or run.stopping or run.stage != "volumes":
            run.blocked = ""
            return
        problem = self._volume_problem(pod, run)
        if problem:
            if retry or run.blocked != problem[1]:
                self._event(pod, problem[0], problem[1], "Warning", problem[2], host=run.node)
            if not run.blocked:
                self._later(run, self.timing.mount_retry, lambda: self._retry_mount(run))
            run.blocked = problem[1]
            return
        run.blocked = ""
        run.stage = "sandbox"
        claims = [v for v in pod["spec"].get("volumes") or [] if v.get("persistentVolumeClaim")]
        for volume in claims:
            claim = self._get(
                "persistentvolumeclaims", run.namespace, volume["persistentVolumeClaim"]["claimName"]
            )
            volume_name = (claim or {}).get("spec", {}).get("volumeName", "")
            self._event(
                pod,
                "SuccessfulAttachVolume",
                f'AttachVolume.Attach succeeded for volume "{volume_name}"',
                "Normal",
                ATTACH_CONTROLLER,
            )
        self._later(run, self.timing.volume_attach if claims else 0.0, lambda: self._sandbox(run))

    def _retry_mount(self, run: PodRun) -> None:
        blocked = run.blocked
        run.blocked = ""
        if blocked:
            self._mount(run, retry=True)

    def _volume_problem(self, pod: dict[str, Any], run: PodRun) -> tuple[str, str, str] | None:
        for volume in pod["spec"].get("volumes") or []:
            for kind, key, name_key in (
                ("secret", "secret", "secretName"),
                ("configmap", "configMap", "name"),
            ):
                source = volume.get(key)
                if source is None or source.get("optional"):
                    continue
                resource = "secrets" if kind == "secret" else "configmaps"
                if self._get(resource, run.namespace, source.get(name_key, "")) is None:
                    message = (
                        f'MountVolume.SetUp failed for volume "{volume["name"]}" : '
                        f'{kind} "{source.get(name_key, "")}" not found'
                    )
                    return "FailedMount", message, KUBELET
            claim_source = volume.get("persistentVolumeClaim")
            if claim_source:
                claim = self._get("persistentvolumeclaims", run.namespace, claim_source.get("claimName", ""))
                if claim is None or claim["status"].get("phase") != "Bound":
                    continue
                holders = self._claim_holders(claim, run.uid)
                if holders and "ReadWriteOnce" in (claim["spec"].get("accessModes") or []):
                    message = (
                        f'Multi-Attach error for volume "{claim["spec"]["volumeName"]}" '
                        f"Volume is already used by pod(s) {', '.join(holders)}"
                    )
                    return "FailedAttachVolume", message, ATTACH_CONTROLLER
        return None

    def _claim_holders(self, claim: dict[str, Any], uid: str) -> list[str]:
        """Other pods that still hold the claim: started on a node and not yet removed."""
        holders = []
        for other in self._cached_pods():
            if other["metadata"]["namespace"] != claim["metadata"]["namespace"]:
                continue
            if other["metadata"]["uid"] == uid or other["status"].get("phase") in scheduler.TERMINAL_PHASES:
                continue
            holder = self._runs.get(other["metadata"]["uid"])
            if holder is None or holder.stopped:
                continue
            for volume in other["spec"].get("volumes") or []:
                if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim["metadata"]["name"]:
                    holders.append(other["metadata"]["name"])
        return sorted(holders)

    def _sandbox(self, run: PodRun) -> None:
        node = self._node(run.node) or {}
        cidr = (node.get("spec") or {}).get("podCIDR", "10.244.0.0/24")
        self._next_ip[run.node] = self._next_ip.get(run.node, 1) + 1
        run.pod_ip = f"{cidr.rsplit('.', 1)[0]}.{self._next_ip[run.node] % 254 + 1}"
        self._condition(run, "PodReadyToStartContainers", "True")
        run.stage = "containers"
        self._write(run)
        if run.init_containers:
            self._pull(run, run.init_containers[0])
        else:
            self._start_main(run)

    def _start_main(self, run: PodRun) -> None:
        self._condition(run, "Initialized", "True")
        for container in run.containers:
            self._pull(run, container)

    # ------------------------------------------------------------------ images

    def _runtime_prefix(self, run: PodRun) -> str:
        node = self._node(run.node) or {}
        version = node.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion", "containerd://")
        return version.split("://", 1)[0]

    def _waiting(self, run: PodRun, container: ContainerRun, reason: str, message: str = "") -> None:
        container.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self._write(run)

    def _pull(self, run: PodRun, container: ContainerRun) -> None:
        image, behaviour = container.image, container.behaviour
        if behaviour.pull == PULL_INVALID or not valid_reference(image):
            message = (
                f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
                "invalid reference format"
            )
            self._container_event(run, container, "InspectFailed", message, "Warning")
            self._container_event(run, container, "Failed", "Error: InvalidImageName", "Warning")
            self._waiting(run, container, "InvalidImageName", message)
            return
        present = image in self._images.get(run.node, set())
        if present and container.spec.get("imagePullPolicy") != "Always":
            self._container_event(
                run, container, "Pulled", f'Container image "{image}" already present on machine'
            )
            container.pulled = True
            self._create(run, container)
            return
        self._container_event(run, container, "Pulling", f'Pulling image "{image}"')
        self._later(run, behaviour.pull_seconds, lambda: self._pulled(run, container))

    def _pulled(self, run: PodRun, container: ContainerRun) -> None:
        image, behaviour = container.image, container.behaviour
        if behaviour.pull != PULL_OK:
            reason = self._pull_failure(image, behaviour)
            message = f'Failed to pull image "{image}": {reason}'
            self._container_event(run, container, "Failed", message, "Warning")
            self._container_event(run, container, "Failed", "Error: ErrImagePull", "Warning")
            self._waiting(run, container, "ErrImagePull", message)
            container.pull_backoff = min(
                MAX_BACKOFF, container.pull_backoff * 2 or self.timing.image_pull_backoff
            )
            self._later(run, 1.0, lambda: self._pull_backoff(run, container))
            return
        seconds = behaviour.pull_seconds
        self._container_event(
            run,
            container,
            "Pulled",
            f'Successfully pulled image "{image}" in {seconds:.3f}s ({seconds:.3f}s including waiting). '
            f"Image size: {behaviour.size} bytes.",
        )
        self._images.setdefault(run.node, set()).add(image)
        container.pulled = True
        self._create(run, container)

    def _pull_backoff(self, run: PodRun, container: ContainerRun) -> None:
        message = f'Back-off pulling image "{container.image}"'
        self._container_event(run, container, "BackOff", message)
        self._container_event(run, container, "Failed", "Error: ImagePullBackOff", "Warning")
        self._waiting(run, container, "ImagePullBackOff", message)
        self._later(run, container.pull_backoff, lambda: self._pull(run, container))

    @staticmethod
    def _pull_failure(image: str, behaviour: ImageBehaviour) -> str:
        name = image.split("@", 1)[0]
        host = (
            name.split("/", 1)[0]
            if "/" in name and ("." in name.split("/", 1)[0])
            else "registry-1.docker.io"
        )
        if behaviour.pull == PULL_CERTIFICATE_ERROR:
            return (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": failed to do request: Head "https://{host}/v2/": '
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        if host.endswith(".invalid"):
            return (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": failed to do request: Head "https://{host}/v2/": '
                f"dial tcp: lookup {host}: no such host"
            )
        return (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to resolve '
            f'reference "{image}": {image}: not found'
        )

    # ------------------------------------------------------------------ containers

    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._get("secrets" if kind == "Secret" else "configmaps", namespace, name)
        if obj is None:
            return None
        data = dict(obj.get("stringData") or {})
        if kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                data[key] = base64.b64decode(value).decode("utf-8", "replace")
        else:
            data.update(obj.get("data") or {})
        return data

    def _env(self, run: PodRun, container: ContainerRun) -> dict[str, str]:
        pod = self._get("pods", *run.key) or {"metadata": {}, "spec": {}}
        node = self._node(run.node) or {}
        allocatable = node.get("status", {}).get("allocatable", {})
        return supervisor_sim.container_env(pod, container.spec, self._lookup, allocatable)

    def _create(self, run: PodRun, container: ContainerRun) -> None:
        if run.stopping or not container.pulled:
            container.blocked = ""
            return
        try:
            env = self._env(run, container)
        except supervisor_sim.EnvError as exc:
            if container.blocked != str(exc):
                self._container_event(run, container, "Failed", f"Error: {exc}", "Warning")
                self._waiting(run, container, "CreateContainerConfigError", str(exc))
            container.blocked = str(exc)
            return
        container.blocked = ""
        container.container_id = (
            f"{self._runtime_prefix(run)}://{_digest(f'{run.uid}{container.name}{time.time()}')}"
        )
        self._container_event(run, container, "Created", f"Created container {container.name}")
        self._later(run, self.timing.container_start, lambda: self._started(run, container, env))

    def _started(self, run: PodRun, container: ContainerRun, env: dict[str, str]) -> None:
        self._container_event(run, container, "Started", f"Started container {container.name}")
        started_at = self.clock.timestamp()
        container.state = {"running": {"startedAt": started_at}}
        container.marker = False
        container.probe_passed = False
        if not container.init:
            run.phase = "Running"
        self._write(run)
        catalog = self.profile.images
        if supervisor_sim.is_supervisor(container.spec, catalog) and not container.init:
            outcome = supervisor_sim.simulate_pod_supervisor(container.spec, env, catalog, self.timing)
            self._play(run, container, outcome, 0)
            self._arm_probe(run, container)
        else:
            if supervisor_sim.is_wrapper(container.spec):
                line, _ = supervisor_sim.wrapper_output(container.behaviour, self.clock.now())
                self.store.append_log(run.namespace, run.name, container.name, line)
            if container.behaviour.crash:
                behaviour = container.behaviour
                if behaviour.message:
                    self.store.append_log(run.namespace, run.name, container.name, behaviour.message)
                self._later(
                    run,
                    self.timing.container_start,
                    lambda: self._exited(run, container, behaviour.exit_code, behaviour.message),
                )
            elif container.init:
                self._later(run, self.timing.container_start, lambda: self._exited(run, container, 0, ""))
            else:
                self._arm_probe(run, container)

    def _play(
        self, run: PodRun, container: ContainerRun, outcome: supervisor_sim.SupervisorRun, index: int
    ) -> None:
        """Write the supervisor's build log step by step, then act on its outcome."""
        if index < len(outcome.steps):
            step = outcome.steps[index]

            def write() -> None:
                line = contract.format_log_line(step.type, step.output, self.clock.now())
                self.store.append_log(run.namespace, run.name, container.name, line)
                self._play(run, container, outcome, index + 1)

            self._later(run, step.after, write)
            return
        if outcome.ready:
            container.marker = True
        else:
            self._exited(run, container, outcome.exit_code or 1, outcome.termination_message)

    def _arm_probe(self, run: PodRun, container: ContainerRun) -> None:
        probe = container.spec.get("readinessProbe")
        if probe is None:
            container.probe_passed = True
            self._refresh_ready(run)
            return
        period = float(probe.get("periodSeconds", DEFAULT_PROBE_PERIOD))
        restarts = container.restart_count

        def check() -> None:
            if not container.running or container.restart_count != restarts:
                return
            if self._probe_passes(container):
                container.probe_passed = True
                self._refresh_ready(run)
            else:
                self._later(run, period, check)

        self._later(run, max(period, float(probe.get("initialDelaySeconds", 0))), check)

    @staticmethod
    def _probe_passes(container: ContainerRun) -> bool:
        """An exec probe on the ready marker passes only once the supervisor wrote it."""
        probe = container.spec.get("readinessProbe") or {}
        command = (probe.get("exec") or {}).get("command") or []
        if contract.READY_MARKER_PATH in " ".join(command):
            return container.marker
        return True

    @staticmethod
    def _container_ready(container: ContainerRun) -> bool:
        return container.running and container.probe_passed

    def _refresh_ready(self, run: PodRun) -> None:
        if all(self._container_ready(c) for c in run.containers):
            self._condition(run, "ContainersReady", "True")
            self._condition(run, "Ready", "True")
        else:
            self._not_ready(run, "ContainersNotReady")
        self._write(run)

    def _exited(self, run: PodRun, container: ContainerRun, exit_code: int, message: str) -> None:
        started = container.state.get("running", {}).get("startedAt", self.clock.timestamp())
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": self.clock.timestamp(),
            "containerID": container.container_id,
        }
        if message and container.spec.get("terminationMessagePolicy", "File") in (
            "File",
            "FallbackToLogsOnError",
        ):
            terminated["message"] = message
        policy = (self._get("pods", *run.key) or {}).get("spec", {}).get("restartPolicy", "Always")
        if container.init and exit_code == 0:
            container.state = {"terminated": terminated}
            self._write(run)
            following = run.init_containers.index(container) + 1
            if following < len(run.init_containers):
                self._pull(run, run.init_containers[following])
            else:
                self._start_main(run)
            return
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if container.init and not restart:
            container.state = {"terminated": terminated}
            run.phase = "Failed"
            self._not_ready(run, "PodFailed")
            self._write(run)
            return
        if restart:
            container.last_state = {"terminated": terminated}
            container.restart_count += 1
            container.crash_backoff = min(
                MAX_BACKOFF, container.crash_backoff * 2 or self.timing.crash_backoff
            )
            uid_note = f"{run.name}_{run.namespace}({run.uid})"
            container.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(container.crash_backoff)}s restarting failed "
                    f"container={container.name} pod={uid_note}",
                }
            }
            container.probe_passed = False
            self._not_ready(run, "ContainersNotReady")
            self._write(run)
            self._container_event(
                run,
                container,
                "BackOff",
                f"Back-off restarting failed container {container.name} in pod {uid_note}",
                "Warning",
            )
            self._later(run, container.crash_backoff, lambda: self._create(run, container))
            return
        container.state = {"terminated": terminated}
        container.probe_passed = False
        if all(c.terminated for c in run.containers):
            failed = any(c.state["terminated"]["exitCode"] != 0 for c in run.containers)
            run.phase = "Failed" if failed else "Succeeded"
            self._not_ready(run, "PodFailed" if failed else "PodCompleted")
        else:
            self._not_ready(run, "ContainersNotReady")
        self._write(run)

    # ------------------------------------------------------------------ deletion

    def _stop_pod(self, run: PodRun, pod: dict[str, Any]) -> None:
        """SIGTERM: containers take their time to stop, within the grace period, then the pod goes."""
        run.stopping = True
        run.generation += 1
        for container in run.containers:
            if container.running:
                self._container_event(run, container, "Killing", f"Stopping container {container.name}")
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        running = any(c.running for c in run.containers)
        catalog = self.profile.images
        supervised = any(supervisor_sim.is_supervisor(c.spec, catalog) for c in run.containers)
        stop = self.timing.supervisor_stop if supervised else self.timing.stop_seconds
        seconds = min(float(grace), stop) if running else 0.0

        def stopped() -> None:
            run.stopped = True
            self._remove(pod, run.uid)
            self._retry_blocked()

        self._after(seconds, stopped)

    def _remove(self, pod: dict[str, Any], uid: str | None = None) -> None:
        meta = pod["metadata"]
        try:
            self.store.delete(
                "pods",
                meta["namespace"],
                meta["name"],
                grace_period_seconds=0,
                preconditions={"uid": uid or meta["uid"]},
            )
        except APIError:
            return

    # ------------------------------------------------------------------ status

    def _container_status(self, container: ContainerRun) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "ready": self._container_ready(container),
            "restartCount": container.restart_count,
            "started": container.running,
            "state": container.state,
            "lastState": container.last_state,
        }
        if container.pulled:
            status["imageID"] = f"{repository(container.image)}@sha256:{_digest(container.image)}"
        if container.container_id:
            status["containerID"] = container.container_id
        return status

    def _write(self, run: PodRun) -> None:
        with self.store.lock:
            pod = self._get("pods", *run.key)
            if pod is None or pod["metadata"]["uid"] != run.uid:
                return
            order = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            status: dict[str, Any] = {
                "phase": run.phase,
                "conditions": [run.conditions[kind] for kind in order if kind in run.conditions],
                "hostIP": run.host_ip,
                "hostIPs": [{"ip": run.host_ip}] if run.host_ip else [],
                "startTime": run.start_time,
                "qosClass": pod["status"].get("qosClass", "BestEffort"),
                "containerStatuses": [self._container_status(c) for c in run.containers],
            }
            if run.init_containers:
                status["initContainerStatuses"] = [self._container_status(c) for c in run.init_containers]
            if run.pod_ip:
                status["podIP"] = run.pod_ip
                status["podIPs"] = [{"ip": run.pod_ip}]
            if status == {key: pod["status"].get(key) for key in status}:
                return
            pod["status"] = status
            pod["metadata"].pop("resourceVersion", None)
            self.store.update_status("pods", pod)
