"""The object store of the simulated API server, usable over HTTP and in-process.

Python-level interface for in-process controllers (scheduler, kubelet, ...), all thread-safe and
going through the same defaulting, resourceVersion and watch fan-out as HTTP requests. Resources
are named ``plural`` (core) or ``plural.group`` (e.g. ``"pods"``, ``"leases.coordination.k8s.io"``);
objects are plain dicts as they appear in JSON, and every method returns copies. Errors are
``APIError`` (404, 409, 422...) exactly as HTTP clients see them. ``events.events.k8s.io`` objects
are the core ``events`` converted on the way in and out.

- ``create(resource, obj, namespace=None, *, dry_run=False, check=None) -> dict``
- ``get(resource, namespace, name) -> dict`` (``APIError`` 404 when missing)
- ``list(resource, namespace=None, *, label_selector="", field_selector="") -> list[dict]``
- ``update(resource, obj, namespace=None, *, dry_run=False, check=None) -> dict`` (a stale
  ``metadata.resourceVersion`` is a 409; none means unconditional; status is kept for kinds with a
  status subresource) and ``update_status(resource, obj) -> dict`` (only status changes)
- ``delete(resource, namespace, name, *, grace_period_seconds=None, propagation_policy=None,
  preconditions=None, dry_run=False) -> DeleteResult``
- ``watch(resource, namespace=None, *, label_selector="", field_selector="", resource_version=None)
  -> Watcher``: iterate ``(type, obj)`` pairs (ADDED / MODIFIED / DELETED / ERROR); ``stop()`` ends it.
- ``subscribe(callback) -> unsubscribe``: ``callback(event: WatchEvent)`` runs for every committed
  change, in resourceVersion order, with the store lock held; it must be quick (hand work to a
  queue) and must not mutate ``event.obj``.
- ``append_log(namespace, pod, container, text)`` records container output served by ``pods/log``.
- ``finish_graceful_deletion``: when ``True`` (default) the store itself removes gracefully deleted
  pods once their grace period ends; a simulated kubelet sets it to ``False`` and deletes them
  with ``grace_period_seconds=0`` itself.
- ``compact()`` forgets the event history, so older resourceVersions answer 410 Expired.
- ``namespace_cleanup_delay``: seconds a deleted namespace stays ``Terminating`` before its contents
  are deleted (as the namespace controller does asynchronously); 0 makes it synchronous.

``check(new, old)`` callbacks run under the store lock after defaulting and before anything is
stored; the HTTP layer passes validation and admission there, so a check that raises stores nothing.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import queue
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors
from .conversion import event_from_core, event_to_core
from .defaults import apply_defaults, initial_status
from .errors import APIError, Cause
from .resources import RESOURCES, ResourceType, lookup
from .selectors import exact_name, labels_match, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

Check = Callable[[dict[str, Any], dict[str, Any] | None], None]
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_CORE_EVENTS = lookup("events")
_EVENTS_V1 = lookup("events.events.k8s.io")
_IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Stored:
    """One revision of an object; its JSON is serialised once and shared by lists and watches."""

    __slots__ = ("_json", "obj")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._json

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class WatchEvent:
    type: str
    rt: ResourceType
    stored: Stored
    old: dict[str, Any] | None
    rv: int

    @property
    def obj(self) -> dict[str, Any]:
        return self.stored.obj


@dataclass(frozen=True)
class DeleteResult:
    obj: dict[str, Any]
    removed: bool  # gone now (True) or only marked with deletionTimestamp (False)


@dataclass(frozen=True)
class ListResult:
    items: list[Stored]
    resource_version: int
    continue_token: str
    remaining: int | None


_CLOSED = object()


class Watcher:
    """A filtered event stream for one watch; entries are ``(type, Stored | dict)``."""

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        labels,
        fields,
        max_pending: int,
        view: ResourceType | None = None,
    ):
        self._store = store
        self.rt = rt
        self.view = view or rt
        self.namespace = namespace
        self._labels = labels
        self._fields = fields
        self._queue: queue.Queue[Any] = queue.Queue()
        self._max_pending = max_pending
        self.closed = False
        self.initial_events = 0

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self._labels, obj) and (self._fields is None or self._fields(obj))

    def put(self, event_type: str, payload: Any) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._max_pending:
            self.expire("the watcher fell behind the event stream")
            return
        self._queue.put((event_type, payload))

    def offer(self, event: WatchEvent) -> None:
        """Translate a store event for this watcher: leaving the selector is a DELETED."""
        if event.rt is not self.rt or self.closed:
            return
        stored, old = event.stored, event.old
        if self.view is not self.rt:
            stored = self._store._out_stored(self.view, stored)
            old = self._store._out(self.view, old) if old is not None else None
        new_match = self.matches(stored.obj)
        old_match = old is not None and self.matches(old)
        if event.type == "DELETED":
            if new_match or old_match:
                self.put("DELETED", stored)
        elif event.type == "ADDED" or not old_match:
            if new_match:
                self.put("ADDED", stored)
        elif new_match:
            self.put("MODIFIED", stored)
        else:
            self.put("DELETED", stored)

    def expire(self, message: str) -> None:
        """End the stream with the ERROR event a real server sends for an expired resourceVersion."""
        if not self.closed:
            self._queue.put(("ERROR", errors.expired(message).status()))
            self.stop()

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put((_CLOSED, None))
            self._store._unregister(self)

    def next_raw(self, timeout: float | None) -> tuple[str, Any] | None:
        """The next entry, ``None`` on timeout, ``("CLOSED", None)`` once stopped."""
        try:
            event_type, payload = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if event_type is _CLOSED:
            return ("CLOSED", None)
        return event_type, payload

    def bookmark_rv(self) -> int | None:
        """The store's resourceVersion if every event up to it was already delivered to this watcher."""
        with self._store.lock:
            return self._store.resource_version if self._queue.empty() else None

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            entry = self.next_raw(None)
            if entry is None or entry[0] == "CLOSED":
                return
            event_type, payload = entry
            yield event_type, copy.deepcopy(payload.obj if isinstance(payload, Stored) else payload)


class Store:
    """All objects, the cluster-wide resourceVersion counter, event history, watches and logs."""

    def __init__(
        self, history_size: int = 2000, max_pending_events: int = 10_000, namespace_cleanup_delay: float = 0.2
    ) -> None:
        self.lock = threading.RLock()
        self._logs_changed = threading.Condition(self.lock)
        self.resource_version = 1000
        self._data: dict[ResourceType, dict[str, dict[str, Stored]]] = {rt: {} for rt in RESOURCES}
        self._by_uid: dict[str, tuple[ResourceType, str, str]] = {}
        self._dependents: dict[str, set[str]] = {}
        self._history: deque[WatchEvent] = deque()
        self._history_size = history_size
        self._history_floor = 0
        self._watchers: set[Watcher] = set()
        self._max_pending = max_pending_events
        self._subscribers: list[Callable[[WatchEvent], None]] = []
        self._logs: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._timers: set[threading.Timer] = set()
        self._next_ip = 1
        self.finish_graceful_deletion = True
        self.namespace_cleanup_delay = namespace_cleanup_delay

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _rt(resource: str | ResourceType) -> ResourceType:
        return resource if isinstance(resource, ResourceType) else lookup(resource)

    def _split(self, resource: str | ResourceType) -> tuple[ResourceType, ResourceType]:
        """(the kind asked for, the kind it is stored as): events.k8s.io Events are core Events."""
        rt = self._rt(resource)
        return rt, (_CORE_EVENTS if rt is _EVENTS_V1 else rt)

    @staticmethod
    def _out(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return event_from_core(obj) if rt is _EVENTS_V1 else obj

    @staticmethod
    def _in(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return event_to_core(obj) if rt is _EVENTS_V1 else obj

    def _out_stored(self, rt: ResourceType, stored: Stored) -> Stored:
        return Stored(event_from_core(stored.obj)) if rt is _EVENTS_V1 else stored

    @staticmethod
    def _wrap_check(rt: ResourceType, check: Check | None) -> Check | None:
        if check is None or rt is not _EVENTS_V1:
            return check

        def converted(new: dict[str, Any], old: dict[str, Any] | None) -> None:
            check(event_from_core(new), event_from_core(old) if old is not None else None)

        return converted

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"

    def _bucket(self, rt: ResourceType, namespace: str | None) -> dict[str, Stored]:
        return self._data[rt].setdefault(namespace or "", {})

    def _find(self, rt: ResourceType, namespace: str | None, name: str) -> Stored:
        stored = self._data[rt].get(namespace or "" if rt.namespaced else "", {}).get(name)
        if stored is None:
            raise errors.not_found(rt.group, rt.plural, name)
        return stored

    def _next_rv(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def _commit(
        self, event_type: str, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> Stored:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj)
        meta = obj["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        if event_type == "DELETED":
            self._bucket(rt, ns).pop(name, None)
            self._by_uid.pop(uid, None)
            self._index_owners(uid, old, None)
        else:
            self._bucket(rt, ns)[name] = stored
            self._by_uid[uid] = (rt, ns, name)
            self._index_owners(uid, old, obj)
        event = WatchEvent(event_type, rt, stored, old, rv)
        self._history.append(event)
        while len(self._history) > self._history_size:
            self._history_floor = self._history.popleft().rv
        for watcher in list(self._watchers):
            watcher.offer(event)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("store subscriber failed")
        if event_type != "ADDED":
            self._logs_changed.notify_all()
        return stored

    def _index_owners(self, uid: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for source, add in ((old, False), (new, True)):
            for ref in (source or {}).get("metadata", {}).get("ownerReferences") or []:
                owner = ref.get("uid") if isinstance(ref, dict) else None
                if not owner:
                    continue
                if add:
                    self._dependents.setdefault(owner, set()).add(uid)
                else:
                    self._dependents.get(owner, set()).discard(uid)

    def _namespace_of(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> str | None:
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return None
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns
        if not ns:
            raise errors.bad_request("an empty namespace may not be set during creation")
        meta["namespace"] = ns
        return ns

    # ----------------------------------------------------------------- reads

    def get(self, resource: str | ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        rt, srt = self._split(resource)
        with self.lock:
            return copy.deepcopy(self._out(rt, self._find(srt, namespace, name).obj))

    def get_stored(self, resource: str | ResourceType, namespace: str | None, name: str) -> Stored:
        rt, srt = self._split(resource)
        with self.lock:
            return self._out_stored(rt, self._find(srt, namespace, name))

    def list(
        self,
        resource: str | ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        result = self.list_page(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [copy.deepcopy(s.obj) for s in result.items]

    def _candidates(
        self, rt: ResourceType, namespace: str | None, name: str | None
    ) -> list[tuple[str, str, Stored]]:
        buckets = self._data[rt]
        if rt.namespaced and namespace:
            selected = [(namespace, buckets.get(namespace, {}))]
        else:
            selected = list(buckets.items())
        out = []
        for ns, bucket in selected:
            if name is not None:
                if name in bucket:
                    out.append((ns, name, bucket[name]))
            else:
                out.extend((ns, n, s) for n, s in bucket.items())
        return out

    def list_page(
        self,
        resource: str | ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int | None = None,
        continue_token: str = "",
    ) -> ListResult:
        """One page of a list, with the continue token for the next (``""`` at the end)."""
        rt, srt = self._split(resource)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt)
        start = ""
        if continue_token:
            start = self._decode_continue(continue_token)
        with self.lock:
            list_rv = self.resource_version
            rows = self._candidates(srt, namespace, exact_name(field_selector))
        if rt is not srt:
            rows = [(ns, n, self._out_stored(rt, s)) for ns, n, s in rows]
        rows.sort(key=lambda row: (row[0], row[1]))
        items, next_token, remaining = [], "", None
        matched = (
            s
            for ns, n, s in rows
            if (not start or f"{ns}/{n}" > start)
            and labels_match(labels, s.obj)
            and (fields is None or fields(s.obj))
        )
        for stored in matched:
            if limit and len(items) >= limit:
                last = items[-1].obj["metadata"]
                next_token = self._encode_continue(list_rv, f"{last.get('namespace', '')}/{last['name']}")
                remaining = 1 + sum(1 for _ in matched)
                break
            items.append(stored)
        return ListResult(items, list_rv, next_token, remaining)

    def _encode_continue(self, rv: int, start: str) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_continue(self, token: str) -> str:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(data["rv"]), str(data["start"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion"
            ) from None
        if rv < self._history_floor:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start "
                "a new list without the continue parameter, or use the continue token in this response to "
                "retrieve the remainder of the results. Continuing with the provided token results in an "
                "inconsistent list - objects that were created, modified, or deleted between the time the "
                "first chunk was returned and now may show up in the list."
            )
        return start

    def view(self) -> StoreView:
        return StoreView(self)

    # ----------------------------------------------------------------- writes

    def create(
        self,
        resource: str | ResourceType,
        obj: dict[str, Any],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        check: Check | None = None,
    ) -> dict[str, Any]:
        view, rt = self._split(resource)
        obj = self._in(view, copy.deepcopy(obj))
        check = self._wrap_check(view, check)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        ns = self._namespace_of(rt, obj, namespace)
        for key in (*_SYSTEM_META, "resourceVersion", "selfLink"):
            meta.pop(key, None)
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(rt, ns, str(meta["generateName"]))
            if not meta.get("name"):
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        Cause(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            if ns is not None:
                self._check_namespace_open(ns)
            if meta["name"] in self._bucket(rt, ns):
                raise errors.already_exists(rt.group, rt.plural, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if "spec" in obj:
                meta["generation"] = 1
            apply_defaults(rt, obj, self._allocate_ip)
            status = initial_status(rt, obj)
            if status is not None:
                obj["status"] = status
            if check is not None:
                check(obj, None)
            if dry_run:
                return self._out(view, obj)
            stored = self._commit("ADDED", rt, obj, None)
            return copy.deepcopy(self._out(view, stored.obj))

    def _generate_name(self, rt: ResourceType, ns: str | None, prefix: str) -> str:
        bucket = self._bucket(rt, ns)
        for _ in range(10):
            name = prefix[:58] + "".join(random.choices(_NAME_CHARS, k=5))  # noqa: S311 - names, not secrets
            if name not in bucket:
                return name
        raise errors.APIError(500, "AlreadyExists", f"{rt.plural} could not generate a unique name")

    def _check_namespace_open(self, ns: str) -> None:
        stored = self._data[lookup("namespaces")].get("", {}).get(ns)
        if stored is None:
            raise errors.not_found("", "namespaces", ns)
        if stored.obj["metadata"].get("deletionTimestamp"):
            raise APIError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {ns} because it is being terminated",
                {
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ]
                },
            )

    def update(
        self,
        resource: str | ResourceType,
        obj: dict[str, Any],
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        check: Check | None = None,
        status_only: bool = False,
    ) -> dict[str, Any]:
        """Replace an object (PUT); a stale ``metadata.resourceVersion`` is a 409 Conflict."""
        view, rt = self._split(resource)
        obj = self._in(view, copy.deepcopy(obj))
        check = self._wrap_check(view, check)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        ns = namespace or obj["metadata"].get("namespace") if rt.namespaced else None
        name = obj["metadata"].get("name", "")
        with self.lock:
            current = self._find(rt, ns, name)
            new = self._prepare_update(rt, current.obj, obj, status_only)
            if check is not None:
                check(new, current.obj)
            if dry_run:
                return self._out(view, new)
            return copy.deepcopy(self._out(view, self._write(rt, current, new).obj))

    def update_status(
        self, resource: str | ResourceType, obj: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        return self.update(resource, obj, status_only=True, **kwargs)

    def _prepare_update(
        self, rt: ResourceType, cur: dict[str, Any], obj: dict[str, Any], status_only: bool
    ) -> dict[str, Any]:
        meta, cur_meta = obj["metadata"], cur["metadata"]
        rv = meta.get("resourceVersion")
        if rv and rv != cur_meta["resourceVersion"]:
            raise errors.stale_resource_version(rt.group, rt.plural, cur_meta["name"])
        if meta.get("uid") and meta["uid"] != cur_meta["uid"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                cur_meta["name"],
                f"Precondition failed: UID in precondition: {meta['uid']}, "
                f"UID in object meta: {cur_meta['uid']}",
            )
        if status_only:
            new = copy.deepcopy(cur)
            new["status"] = copy.deepcopy(obj.get("status", {}))
            return new
        new = obj
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        for key in (*_SYSTEM_META, "name", "namespace"):
            if key in cur_meta:
                meta[key] = cur_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        if cur_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    cur_meta["name"],
                    [
                        Cause(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted, "
                            "found new "
                            f"finalizers {sorted(added)!r}".replace("'", '"'),
                        )
                    ],
                )
        if rt.has_status:
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            else:
                new.pop("status", None)
        apply_defaults(rt, new, self._allocate_ip)
        if "generation" in cur_meta and _spec_of(new) != _spec_of(cur):
            meta["generation"] = cur_meta["generation"] + 1
        return new

    def _write(self, rt: ResourceType, current: Stored, new: dict[str, Any]) -> Stored:
        """Commit an update; an object being deleted whose last finalizer went is removed."""
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._awaits_grace(rt, new):
            stored = self._commit("DELETED", rt, new, current.obj)
            self._after_removal(rt, new)
            return stored
        if new == current.obj:
            return current
        return self._commit("MODIFIED", rt, new, current.obj)

    def _awaits_grace(self, rt: ResourceType, obj: dict[str, Any]) -> bool:
        return (
            rt.plural == "pods" and not rt.group and bool(obj["metadata"].get("deletionGracePeriodSeconds"))
        )

    # ----------------------------------------------------------------- deletion

    def delete(
        self,
        resource: str | ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> DeleteResult:
        view, rt = self._split(resource)
        if propagation_policy not in (None, "Foreground", "Background", "Orphan"):
            raise errors.bad_request(
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{propagation_policy}": supported values: "Foreground", "Background", "Orphan", "nil"'
            )
        with self.lock:
            current = self._find(rt, namespace if rt.namespaced else None, name)
            meta = current.obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise errors.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            if dry_run:
                return DeleteResult(copy.deepcopy(self._out(view, current.obj)), False)
            if rt.plural == "namespaces" and not rt.group:
                if name in _IMMORTAL_NAMESPACES:
                    raise errors.forbidden(
                        f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                        "",
                        "namespaces",
                        name,
                    )
                return self._delete_namespace(current)
            result = self._delete_locked(rt, current, grace_period_seconds, propagation_policy)
            return DeleteResult(copy.deepcopy(self._out(view, result.obj)), result.removed)

    def _delete_locked(
        self, rt: ResourceType, current: Stored, grace: int | None, policy: str | None
    ) -> DeleteResult:
        obj = copy.deepcopy(current.obj)
        meta = obj["metadata"]
        uid = meta["uid"]
        if policy == "Orphan":
            self._orphan_dependents(uid)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self._dependents.get(uid) and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if finalizers:
            meta["finalizers"] = finalizers
        if self._graceful(rt, obj, grace):
            period = grace if grace is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
            already = meta.get("deletionTimestamp")
            if already and meta.get("deletionGracePeriodSeconds", 0) <= period:
                return DeleteResult(current.obj, False)
            meta["deletionGracePeriodSeconds"] = period
            meta["deletionTimestamp"] = (datetime.now(UTC) + timedelta(seconds=period)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            stored = self._commit("MODIFIED", rt, obj, current.obj)
            if self.finish_graceful_deletion:
                self._schedule_reap(rt, meta.get("namespace"), meta["name"], uid, period)
            return DeleteResult(stored.obj, False)
        if finalizers:
            if not meta.get("deletionTimestamp") or meta.get("deletionGracePeriodSeconds"):
                meta["deletionTimestamp"] = meta.get("deletionTimestamp") or now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
            stored = current if obj == current.obj else self._commit("MODIFIED", rt, obj, current.obj)
            if "foregroundDeletion" in finalizers:
                for dependent in list(self._dependents.get(uid, ())):
                    self._delete_by_uid(dependent, "Foreground")
                self._release_foreground(uid)
                still = self._by_uid.get(uid)
                if still is None:
                    return DeleteResult(stored.obj, True)
                stored = self._find(*still)
            return DeleteResult(stored.obj, False)
        meta.pop("deletionGracePeriodSeconds", None)
        meta.setdefault("deletionTimestamp", now_rfc3339())
        meta["deletionGracePeriodSeconds"] = 0
        stored = self._commit("DELETED", rt, obj, current.obj)
        self._after_removal(rt, obj)
        return DeleteResult(stored.obj, True)

    def _graceful(self, rt: ResourceType, obj: dict[str, Any], grace: int | None) -> bool:
        if rt.group or rt.plural != "pods":
            return False
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return False
        period = grace if grace is not None else spec.get("terminationGracePeriodSeconds", 30)
        return bool(period and period > 0)

    def _schedule_reap(self, rt: ResourceType, ns: str | None, name: str, uid: str, period: int) -> None:
        def reap() -> None:
            try:
                self.delete(rt, ns, name, grace_period_seconds=0, preconditions={"uid": uid})
            except APIError:
                return

        self._after(period, reap)

    def _after(self, seconds: float, action: Callable[[], None]) -> None:
        """Run ``action`` on a timer thread (cancelled by ``close``)."""

        def run() -> None:
            self._timers.discard(timer)
            action()

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _delete_by_uid(self, uid: str, policy: str | None) -> None:
        where = self._by_uid.get(uid)
        if where is None:
            return
        rt, ns, name = where
        self._delete_locked(rt, self._find(rt, ns, name), None, policy)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for dep_uid in list(self._dependents.get(owner_uid, ())):
            where = self._by_uid.get(dep_uid)
            if where is None:
                continue
            rt, ns, name = where
            current = self._find(rt, ns, name)
            new = copy.deepcopy(current.obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._write(rt, current, new)

    def _after_removal(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Garbage collection: dependents whose owners are all gone go too; foreground owners progress."""
        meta = obj["metadata"]
        for dep_uid in list(self._dependents.pop(meta["uid"], ())):
            where = self._by_uid.get(dep_uid)
            if where is None:
                continue
            dependent = self._find(*where)
            owners = [r.get("uid") for r in dependent.obj["metadata"].get("ownerReferences") or []]
            if not any(owner in self._by_uid for owner in owners):
                self._delete_locked(where[0], dependent, None, "Background")
        for ref in meta.get("ownerReferences") or []:
            self._release_foreground(ref.get("uid", ""))
        ns = meta.get("namespace")
        if ns:
            self._finish_namespace(ns)

    def _release_foreground(self, owner_uid: str) -> None:
        where = self._by_uid.get(owner_uid)
        if where is None:
            return
        owner = self._find(*where)
        finalizers = owner.obj["metadata"].get("finalizers") or []
        if "foregroundDeletion" not in finalizers:
            return
        for dep_uid in self._dependents.get(owner_uid, ()):
            dep = self._by_uid.get(dep_uid)
            if dep is None:
                continue
            refs = self._find(*dep).obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs):
                return
        new = copy.deepcopy(owner.obj)
        new["metadata"]["finalizers"] = [f for f in finalizers if f != "foregroundDeletion"]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        self._write(where[0], owner, new)

    def _delete_namespace(self, current: Stored) -> DeleteResult:
        ns_rt = lookup("namespaces")
        name = current.obj["metadata"]["name"]
        if not current.obj["metadata"].get("deletionTimestamp"):
            obj = copy.deepcopy(current.obj)
            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj.setdefault("status", {})["phase"] = "Terminating"
            current = self._commit("MODIFIED", ns_rt, obj, current.obj)
            uid = obj["metadata"]["uid"]
            if self.namespace_cleanup_delay > 0:
                self._after(self.namespace_cleanup_delay, lambda: self._clean_namespace(name, uid))
            else:
                self._clean_namespace(name, uid)
        return DeleteResult(copy.deepcopy(current.obj), name not in self._data[ns_rt].get("", {}))

    def _clean_namespace(self, name: str, uid: str) -> None:
        """The namespace controller's part: delete what the terminating namespace holds, then it."""
        with self.lock:
            stored = self._data[lookup("namespaces")].get("", {}).get(name)
            if stored is None or stored.obj["metadata"]["uid"] != uid:
                return
            for rt in RESOURCES:
                if rt.namespaced:
                    for item in list(self._data[rt].get(name, {}).values()):
                        if not item.obj["metadata"].get("deletionTimestamp"):
                            self._delete_locked(rt, item, None, "Background")
            self._finish_namespace(name)

    def _finish_namespace(self, name: str) -> None:
        ns_rt = lookup("namespaces")
        stored = self._data[ns_rt].get("", {}).get(name)
        if stored is None or not stored.obj["metadata"].get("deletionTimestamp"):
            return
        if any(self._data[rt].get(name) for rt in RESOURCES if rt.namespaced):
            return
        obj = copy.deepcopy(stored.obj)
        obj.get("spec", {}).pop("finalizers", None)
        if obj["metadata"].get("finalizers"):
            self._write(ns_rt, stored, obj)
            return
        self._commit("DELETED", ns_rt, obj, stored.obj)

    # ----------------------------------------------------------------- watch

    def watch(
        self,
        resource: str | ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
    ) -> Watcher:
        """Start a watch: from now with the current objects as ADDED (no resourceVersion or "0"), or
        replaying the history after ``resource_version`` (ERROR 410 when it is older than the history)."""
        view, rt = self._split(resource)
        watcher = Watcher(
            self,
            rt,
            namespace if rt.namespaced else None,
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, view),
            self._max_pending,
            view,
        )
        with self.lock:
            if resource_version in (None, "", "0"):
                rows = self._candidates(rt, watcher.namespace, exact_name(field_selector))
                for _, _, row_stored in sorted(rows, key=lambda row: (row[0], row[1])):
                    stored = self._out_stored(view, row_stored)
                    if watcher.matches(stored.obj):
                        watcher.put("ADDED", stored)
                        watcher.initial_events += 1
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise errors.bad_request(f'invalid resource version "{resource_version}"') from None
                if since < self._history_floor:
                    watcher.expire(f"too old resource version: {since} ({self._history_floor})")
                    return watcher
                for event in self._history:
                    if event.rv > since:
                        watcher.offer(event)
            self._watchers.add(watcher)
        return watcher

    def _unregister(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> Callable[[], None]:
        with self.lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self.lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def compact(self) -> None:
        """Drop the event history: every resourceVersion before now becomes "too old"."""
        with self.lock:
            self._history.clear()
            self._history_floor = self.resource_version

    def close_watches(self) -> None:
        with self.lock:
            for watcher in list(self._watchers):
                watcher.stop()
            self._logs_changed.notify_all()

    def close(self) -> None:
        self.close_watches()
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()

    # ----------------------------------------------------------------- logs

    def append_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Record container output; each line is timestamped now (served by ``pods/<name>/log``)."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self.lock:
            lines = self._logs.setdefault((namespace, pod, container), [])
            lines.extend((stamp, line) for line in text.splitlines())
            self._logs_changed.notify_all()

    def log_lines(self, namespace: str, pod: str, container: str, start: int = 0) -> list[tuple[str, str]]:
        with self.lock:
            return list(self._logs.get((namespace, pod, container), [])[start:])

    def wait_for_logs(self, timeout: float) -> None:
        with self._logs_changed:
            self._logs_changed.wait(timeout)

    # ----------------------------------------------------------------- state

    def dump(self) -> dict[str, Any]:
        """A JSON-able snapshot (objects, resourceVersion, logs) for saving to a file."""
        with self.lock:
            return {
                "resourceVersion": self.resource_version,
                "objects": [
                    {"resource": rt.key, "object": stored.obj}
                    for rt, buckets in self._data.items()
                    for bucket in buckets.values()
                    for stored in bucket.values()
                ],
                "logs": [[list(key), lines] for key, lines in self._logs.items()],
            }

    def load(self, state: dict[str, Any]) -> None:
        """Restore a ``dump()``; objects keep their uid and resourceVersion."""
        with self.lock:
            for entry in state.get("objects", []):
                rt, obj = lookup(entry["resource"]), entry["object"]
                meta = obj["metadata"]
                self._bucket(rt, meta.get("namespace"))[meta["name"]] = Stored(obj)
                self._by_uid[meta["uid"]] = (rt, meta.get("namespace", ""), meta["name"])
                self._index_owners(meta["uid"], None, obj)
            for key, lines in state.get("logs", []):
                self._logs[tuple(key)] = [tuple(line) for line in lines]
            self.resource_version = max(self.resource_version, int(state.get("resourceVersion", 0)))
            self._history.clear()
            self._history_floor = self.resource_version


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class StoreView:
    """Read-only adapter handed to admission and RBAC (``views.StoreView`` protocol)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rt, srt = self._store._split(f"{plural}.{group}" if group else plural)
        with self._store.lock:
            return [self._store._out(rt, s.obj) for _, _, s in self._store._candidates(srt, namespace, None)]

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rt, srt = self._store._split(f"{plural}.{group}" if group else plural)
        with self._store.lock:
            stored = self._store._data[srt].get(namespace or "" if srt.namespaced else "", {}).get(name)
            return self._store._out(rt, stored.obj) if stored else None
