"""The cluster watcher: one process that feeds cluster state back into environments.

- Leader election with a ``coordination.k8s.io`` Lease (``infrastructure.leader``): any number of
  watchers may run, one acts.
- list+watch of our pods (``labels.MANAGED_SELECTOR``) and of the namespace's core/v1 events about
  pods (``involvedObject.kind=Pod``, matched to the stored pod names: events carry no pod labels).
  Re-list on 410 Gone and every ``relist_seconds``; exponential backoff with jitter on errors, so
  an API server restart is survived.
- Following the log of a building CVM pod is the one per-pod stream: the supervisor's JSON build
  log becomes environment events and tells which entrypoint was chosen.
- Every database write happens on one dispatcher thread, through ``environments.services``.
- A heartbeat file under ``VAR_DIR`` tells a liveness probe the loop is alive.

The client's ``kubernetes.informer.SharedInformer`` was tried and not used: it decodes every object
into the client's models (costly at thousands of pods, and the product works on plain dicts), retries
a failed list every 5 s without backoff, and runs handlers on its own thread.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.db import close_old_connections, connections
from django.utils import timezone

from coderadmin import heartbeat, metrics
from environments import services
from environments.models import Environment
from environments.provisioner import pod_generation
from environments.services import PodState
from environments.states import State, TransitionNotAllowed
from infrastructure import gateway as gw
from infrastructure import labels
from infrastructure.leader import LEASE_DURATION_SECONDS, RENEW_EVERY_SECONDS, LeaderElection, parse_time
from infrastructure.models import InfrastructureSettings
from infrastructure.supervisor import contract

log = logging.getLogger(__name__)

LEASE_NAME = "coderadmin-watcher"
RELIST_SECONDS = 300.0
WATCH_TIMEOUT_SECONDS = 60
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
# A secret or claim mounted a moment after the pod was created is normal; later it is a failure.
MOUNT_GRACE_SECONDS = 30
# Follow the log of pods created recently even when Ready already (the RuntimeClass wrapper prints
# its entrypoint at once), so a watcher restart does not re-read every running pod's log.
FOLLOW_RECENT_SECONDS = 120
TIMEOUT_CHECK_SECONDS = 10.0
HEARTBEAT_FILE = "watcher.heartbeat"
SEEN_EVENTS_LIMIT = 50_000
# After this long without reaching the API, Building/Running environments turn Unknown.
UNREACHABLE_AFTER_SECONDS = 60.0

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff"})
WAITING_FAILURES = PULL_FAILURES | {"InvalidImageName", "CreateContainerConfigError", "CrashLoopBackOff"}
# FailedScheduling messages that resolve themselves (the claim binds when a pod is scheduled).
TRANSIENT_SCHEDULING = ("unbound immediate PersistentVolumeClaims", "waiting for first consumer")
# Events not worth a build-log line: a CVM's readiness probe fails until the inner container is up.
QUIET_EVENT_REASONS = frozenset({"Unhealthy"})


def backoff(attempt: int) -> float:
    """Exponential with jitter, capped."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


# --------------------------------------------------------------------------- pod assessment


@dataclass(frozen=True)
class Assessment:
    state: PodState
    reason: str = ""
    node_name: str = ""


def _main_container(pod: dict[str, Any]) -> str:
    containers = pod.get("spec", {}).get("containers") or [{}]
    return containers[0].get("name", "")


def is_supervised(pod: dict[str, Any]) -> bool:
    """The CVM pod of the supervising-container backend."""
    return _main_container(pod) == contract.SUPERVISOR_CONTAINER_NAME


def writes_build_log(pod: dict[str, Any]) -> bool:
    """Pods whose main container prints contract build-log lines (supervisor, RuntimeClass wrapper)."""
    return is_supervised(pod) or bool(pod.get("spec", {}).get("runtimeClassName"))


def _image_of(pod: dict[str, Any], status: dict[str, Any]) -> str:
    for container in pod.get("spec", {}).get("containers") or []:
        if container.get("name") == status.get("name"):
            return container.get("image", "")
    return status.get("image", "")


def _waiting_reason(pod: dict[str, Any], status: dict[str, Any], reason: str, message: str) -> str:
    image = _image_of(pod, status)
    what = f"the supervisor image {image}" if is_supervised(pod) else f"image {image}"
    if reason in PULL_FAILURES:
        return f"{what} could not be pulled: {message or reason}"
    if reason == "InvalidImageName":
        return f"{what} is not a valid image reference: {message or reason}"
    if reason == "CreateContainerConfigError":
        return f"the container could not be configured: {message or reason}"
    last = (status.get("lastState") or {}).get("terminated") or {}
    detail = last.get("message") or message or f"exit code {last.get('exitCode', '?')}"
    return f"the environment keeps crashing: {detail.strip()}"


def _terminated_reason(status: dict[str, Any]) -> str:
    terminated = (status.get("state") or {}).get("terminated") or {}
    message = (terminated.get("message") or "").strip()
    if message:
        return message
    code, reason = terminated.get("exitCode"), terminated.get("reason") or "Error"
    return f"the environment's main process exited with code {code} ({reason})"


def assess_pod(pod: dict[str, Any]) -> Assessment | None:
    """What a pod's status means for its environment; None while it is being deleted."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    statuses = status.get("containerStatuses") or []
    node = pod.get("spec", {}).get("nodeName", "")
    if phase == "Failed":
        main = next(
            (s for s in statuses if s.get("name") == _main_container(pod)), statuses[0] if statuses else {}
        )
        reason = _terminated_reason(main) if main else (status.get("message") or "the pod failed")
        return Assessment(PodState.FAILED, reason, node)
    if phase == "Succeeded":
        return Assessment(PodState.FAILED, "the environment's main process exited", node)
    if phase == "Unknown":
        return Assessment(PodState.UNKNOWN, "the node running the environment stopped reporting", node)
    for item in statuses:
        waiting = (item.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_FAILURES:
            reason = _waiting_reason(pod, item, waiting["reason"], waiting.get("message", ""))
            return Assessment(PodState.FAILED, reason, node)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    if phase == "Running" and ready:
        return Assessment(PodState.RUNNING, "", node)
    return Assessment(PodState.PENDING, "", node)


def container_started(pod: dict[str, Any]) -> bool:
    for item in (pod.get("status") or {}).get("containerStatuses") or []:
        if item.get("name") == _main_container(pod):
            state = item.get("state") or {}
            return "running" in state or "terminated" in state
    return False


def _environment_id(pod: dict[str, Any]) -> int | None:
    value = (pod.get("metadata", {}).get("labels") or {}).get(labels.LABEL_ENVIRONMENT_ID)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- list+watch


class ListWatch:
    """list+watch of one kind into a queue: ``("ADDED"|"MODIFIED"|"DELETED", object)`` items, then
    ``("SYNCED", names)`` after each full list (names present in it).

    Objects absent from a re-list are reported DELETED, so nothing is missed across a 410 or an
    outage.
    """

    def __init__(
        self,
        gateway: gw.Gateway,
        kind: str,
        namespace: str,
        emit: Callable[[str, str, Any], None],
        stop: threading.Event,
        *,
        relist_seconds: float = RELIST_SECONDS,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        **query: Any,
    ) -> None:
        self.gateway = gateway
        self.kind = kind
        self.namespace = namespace
        self.emit = emit
        self.stop = stop
        self.relist_seconds = relist_seconds
        self.watch_timeout = watch_timeout
        self.query = query
        self.known: dict[str, dict[str, Any]] = {}
        self.thread = threading.Thread(target=self.run, name=f"watch-{kind.lower()}", daemon=True)

    def _list(self) -> str:
        listing = self.gateway.list(self.kind, self.namespace, **self.query)
        items = {item["metadata"]["name"]: item for item in listing.get("items") or []}
        for name, obj in self.known.items():
            if name not in items:
                self.emit(self.kind, "DELETED", obj)
        for name, obj in items.items():
            self.emit(self.kind, "MODIFIED" if name in self.known else "ADDED", obj)
        self.known = items
        self.emit(self.kind, "SYNCED", set(items))
        return listing["metadata"]["resourceVersion"]

    def run(self) -> None:
        attempt = 0
        version: str | None = None
        listed_at = 0.0
        while not self.stop.is_set():
            try:
                if version is None or time.monotonic() - listed_at > self.relist_seconds:
                    version = self._list()
                    listed_at = time.monotonic()
                started, received = time.monotonic(), 0
                for type_, obj in self.gateway.watch(
                    self.kind,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=self.watch_timeout,
                    **self.query,
                ):
                    attempt, received = 0, received + 1
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if type_ == "BOOKMARK":
                        if self.stop.is_set() or time.monotonic() - listed_at > self.relist_seconds:
                            break
                        continue
                    name = obj["metadata"]["name"]
                    if type_ == "DELETED":
                        self.known.pop(name, None)
                    else:
                        self.known[name] = obj
                    self.emit(self.kind, type_, obj)
                    if self.stop.is_set():
                        break
                if not received and time.monotonic() - started < 1.0:
                    # A server that ends every watch at once is going away: reconnect, re-list.
                    metrics.watcher_reconnect()
                    self.gateway.reset_connections()
                    self.stop.wait(backoff(attempt))
                    attempt += 1
                    version = None
            except gw.Gone:
                version = None
            except gw.GatewayError as exc:
                metrics.watcher_reconnect()
                delay = backoff(attempt)
                attempt += 1
                log.warning("watch of %s failed (%s); retrying in %.1fs", self.kind, exc.message, delay)
                self.gateway.reset_connections()
                self.stop.wait(delay)
                version = None  # re-list: events may have been missed while the API was away


# --------------------------------------------------------------------------- the watcher


@dataclass
class _PodInfo:
    environment_id: int
    generation: int | None
    uid: str
    created: datetime | None
    last: Assessment | None = None


class Watcher:
    """Leader-elected list+watch of our pods and their events, applied through services."""

    def __init__(
        self,
        gateway: gw.Gateway | None = None,
        *,
        namespace: str | None = None,
        identity: str | None = None,
        heartbeat_path: Path | None = None,
        relist_seconds: float = RELIST_SECONDS,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        unreachable_after: float = UNREACHABLE_AFTER_SECONDS,
    ) -> None:
        self.unreachable_after = unreachable_after
        self.gateway = gateway or gw.Gateway()
        self.namespace = namespace or InfrastructureSettings.load().environments_namespace
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self.heartbeat_path = heartbeat_path or Path(django_settings.VAR_DIR) / HEARTBEAT_FILE
        self.relist_seconds = relist_seconds
        self.watch_timeout = watch_timeout
        self.election = LeaderElection(self.gateway, self.namespace, self.identity, LEASE_NAME)
        self.queue: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.pods: dict[str, _PodInfo] = {}
        self.followed: set[str] = set()
        self.seen_events: set[str] = set()
        self.leading = threading.Event()

    # ---------------------------------------------------------------- outer loop

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: win the lease, then watch while renewing it; back off on API errors."""
        attempt = 0
        unreachable_since: float | None = None
        try:
            while not stop.is_set():
                self.heartbeat()
                try:
                    acquired = self.election.try_acquire()
                    attempt, unreachable_since = 0, None
                except gw.GatewayError as exc:
                    acquired = False
                    attempt += 1
                    log.warning("leader election failed: %s", exc.message)
                    if isinstance(exc, gw.Unavailable):
                        unreachable_since = unreachable_since or time.monotonic()
                        if time.monotonic() - unreachable_since >= self.unreachable_after:
                            self._mark_unreachable(exc)
                if not acquired:
                    stop.wait(backoff(attempt) if attempt else RENEW_EVERY_SECONDS)
                    continue
                log.info("watcher %s is the leader", self.identity)
                self._lead(stop)
        finally:
            if self.leading.is_set():
                self.leading.clear()
            try:
                self.election.release()
            except gw.GatewayError:
                log.info("lease not released (API unavailable)")
            connections.close_all()

    def _mark_unreachable(self, exc: gw.GatewayError) -> None:
        close_old_connections()
        reason = f"the cluster cannot be reached: {exc.message}"
        moved = services.environment_mark_unreachable(self.namespace, reason=reason)
        if moved:
            log.warning("%d environments marked Unknown: %s", moved, reason)

    def heartbeat(self) -> None:
        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        self.heartbeat_path.write_text(f"{time.time():.0f}\n")
        heartbeat.beat("watcher")  # also in the cache, for the status page of other containers

    def _lead(self, stop: threading.Event) -> None:
        inner = threading.Event()
        self.leading.set()
        self.pods.clear()
        self.followed.clear()
        watches = [
            ListWatch(
                self.gateway,
                "Pod",
                self.namespace,
                self._emit,
                inner,
                relist_seconds=self.relist_seconds,
                watch_timeout=self.watch_timeout,
                label_selector=labels.MANAGED_SELECTOR,
            ),
            ListWatch(
                self.gateway,
                "Event",
                self.namespace,
                self._emit,
                inner,
                relist_seconds=self.relist_seconds,
                watch_timeout=self.watch_timeout,
                field_selector="involvedObject.kind=Pod",
            ),
        ]
        for watch in watches:
            watch.thread.start()
        renewed = time.monotonic()
        next_timeout_check = 0.0
        try:
            while not stop.is_set():
                self._drain(RENEW_EVERY_SECONDS / 5, inner)
                now = time.monotonic()
                if now >= next_timeout_check:
                    self._fail_timed_out_builds()
                    next_timeout_check = now + TIMEOUT_CHECK_SECONDS
                if now - renewed >= RENEW_EVERY_SECONDS:
                    self.heartbeat()
                    try:
                        held = self.election.try_acquire()
                    except gw.GatewayError as exc:
                        log.warning("lease renewal failed: %s", exc.message)
                        held = now - renewed < LEASE_DURATION_SECONDS
                    else:
                        renewed = now if held else renewed
                    if not held:
                        log.warning("watcher %s lost the lease", self.identity)
                        return
        finally:
            inner.set()
            self.leading.clear()
            for watch in watches:
                watch.thread.join(timeout=self.watch_timeout + 15)

    def _emit(self, kind: str, type_: str, obj: Any) -> None:
        self.queue.put((kind, type_, obj))

    def _drain(self, seconds: float, inner: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                kind, type_, obj = self.queue.get(timeout=remaining)
            except queue.Empty:
                return
            close_old_connections()
            try:
                self._handle(kind, type_, obj, inner)
            except TransitionNotAllowed as exc:
                log.info("ignored a cluster report that no longer fits: %s", exc)
            except Exception:
                log.exception("failed to apply %s %s", kind, type_)

    def _handle(self, kind: str, type_: str, obj: Any, inner: threading.Event) -> None:
        if kind == "Pod":
            if type_ == "SYNCED":
                self._synced(obj)
            else:
                self._pod(type_, obj, inner)
        elif kind == "Event" and type_ in ("ADDED", "MODIFIED"):
            self._cluster_event(obj)
        elif kind == "Log":
            environment_id, generation, lines = obj
            services.environment_record_build_log(environment_id, generation=generation, lines=lines)

    # ---------------------------------------------------------------- pods

    def _pod(self, type_: str, pod: dict[str, Any], inner: threading.Event) -> None:
        meta = pod["metadata"]
        environment_id = _environment_id(pod)
        if environment_id is None:
            return
        name, generation = meta["name"], pod_generation(pod)
        if type_ == "DELETED":
            info = self.pods.pop(name, None)
            if info is None or info.uid == meta.get("uid"):
                services.environment_apply_pod_state(
                    environment_id, generation=generation, state=PodState.GONE
                )
            return
        info = self.pods.get(name)
        if info is None or info.uid != meta.get("uid"):
            info = _PodInfo(
                environment_id, generation, meta.get("uid", ""), parse_time(meta.get("creationTimestamp"))
            )
            self.pods[name] = info
        self._maybe_follow(pod, info, inner)
        assessment = assess_pod(pod)
        if assessment is None or assessment == info.last:
            return
        services.environment_apply_pod_state(
            environment_id,
            generation=generation,
            state=assessment.state,
            reason=assessment.reason,
            node_name=assessment.node_name,
        )
        info.last = assessment

    def _synced(self, names: set[str]) -> None:
        """After a full list: environments that expect a pod the cluster does not have."""
        expecting = Environment.objects.filter(
            namespace=self.namespace,
            state__in=[State.RUNNING, State.UNKNOWN, State.TURNING_OFF, State.DELETING],
        ).exclude(pod_name__in=names)
        for pk, generation in expecting.values_list("pk", "generation"):
            services.environment_apply_pod_state(pk, generation=generation, state=PodState.GONE)

    def _maybe_follow(self, pod: dict[str, Any], info: _PodInfo, inner: threading.Event) -> None:
        if info.uid in self.followed or not writes_build_log(pod) or not container_started(pod):
            return
        assessment = assess_pod(pod)
        recent = (
            info.created is not None
            and (timezone.now() - info.created).total_seconds() < FOLLOW_RECENT_SECONDS
        )
        if assessment is None or (assessment.state is not PodState.PENDING and not recent):
            return
        self.followed.add(info.uid)
        follower = threading.Thread(
            target=self._follow,
            args=(pod["metadata"]["name"], _main_container(pod), info, inner),
            name=f"log-{pod['metadata']['name']}",
            daemon=True,
        )
        follower.start()

    def _follow(self, name: str, container: str, info: _PodInfo, inner: threading.Event) -> None:
        """Read the build log until its ``done`` line or its end; lines go to the dispatcher."""
        for attempt in range(3):
            try:
                for raw in self.gateway.follow_pod_log(
                    self.namespace, name, container, read_timeout=self.watch_timeout
                ):
                    line = contract.parse_log_line(raw)
                    if line is None:
                        continue
                    self.queue.put(("Log", "line", (info.environment_id, info.generation, [line])))
                    if line.type == contract.LOG_DONE or inner.is_set():
                        return
                return
            except gw.NotFound:
                return
            except gw.GatewayError as exc:
                log.info("log follow of %s interrupted: %s", name, exc.message)
                if inner.wait(backoff(attempt)):
                    return

    # ---------------------------------------------------------------- events

    def _cluster_event(self, event: dict[str, Any]) -> None:
        uid = event["metadata"].get("uid", "")
        if uid in self.seen_events:
            return
        if len(self.seen_events) > SEEN_EVENTS_LIMIT:
            self.seen_events.clear()  # the service skips a line it already stored
        self.seen_events.add(uid)
        involved = event.get("involvedObject") or {}
        info = self.pods.get(involved.get("name", ""))
        if info is None:
            row = (
                Environment.objects.filter(namespace=self.namespace, pod_name=involved.get("name", ""))
                .values_list("pk", "generation", "build_started_at")
                .first()
            )
            if row is None:
                return
            pk, generation, started = row
            when = parse_time(event.get("lastTimestamp") or event.get("eventTime"))
            if started is None or (when is not None and when < started - timedelta(seconds=1)):
                return  # an event of an earlier build
            info = _PodInfo(pk, generation, involved.get("uid", ""), None)
        elif involved.get("uid") and info.uid and involved["uid"] != info.uid:
            return  # about an earlier pod of the same name
        reason, message = event.get("reason", ""), (event.get("message") or "").strip()
        warning = event.get("type") == "Warning"
        if reason == "FailedScheduling" and not any(text in message for text in TRANSIENT_SCHEDULING):
            services.environment_apply_pod_state(
                info.environment_id,
                generation=info.generation,
                state=PodState.FAILED,
                reason=f"no node can run it: {message}",
            )
            return
        if reason == "FailedMount" and self._past_mount_grace(event, info):
            services.environment_apply_pod_state(
                info.environment_id,
                generation=info.generation,
                state=PodState.FAILED,
                reason=f"a volume could not be mounted: {message}",
            )
            return
        if reason in QUIET_EVENT_REASONS:
            return
        services.environment_record_cluster_event(
            info.environment_id,
            generation=info.generation,
            type_="warning" if warning else "info",
            message=f"{reason}: {message}" if reason else message,
        )

    @staticmethod
    def _past_mount_grace(event: dict[str, Any], info: _PodInfo) -> bool:
        when = parse_time(event.get("lastTimestamp") or event.get("eventTime")) or datetime.now(UTC)
        created = info.created or when
        return (when - created).total_seconds() > MOUNT_GRACE_SECONDS

    # ---------------------------------------------------------------- timeouts

    def _fail_timed_out_builds(self) -> None:
        """The last resort: builds that did not finish within the settings' build timeout."""
        limit = InfrastructureSettings.load().build_timeout_seconds
        cutoff = timezone.now() - timedelta(seconds=limit)
        stale = Environment.objects.filter(
            namespace=self.namespace, state=State.BUILDING, build_started_at__lt=cutoff
        ).values_list("pk", "generation")
        for pk, generation in stale:
            minutes = max(1, round(limit / 60))
            services.environment_mark_error(
                pk, reason=f"the build did not finish within {minutes} minutes", generation=generation
            )
