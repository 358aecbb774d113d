"""Fault injection for tests: make the simulated API server misbehave the way real ones do.

Tests arm faults (``add``) for the next N requests matching a verb and a path pattern: a 500
``InternalError``, a 429 ``TooManyRequests`` with ``Retry-After``, a delay past the client's timeout,
or a dropped connection. The HTTP layer asks ``check(method, path)`` for every request and acts on
the returned ``Fault``. The cluster-wide faults — closing every open watch, expiring
resourceVersions so the next watch resume gets 410 Gone, restarting the server on the same port
with its state — need the server's internals, so the server binds them with ``bind``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .errors import APIError

KIND_500 = "500"
KIND_429 = "429"
KIND_DELAY = "delay"
KIND_DROP = "drop"
KINDS = frozenset({KIND_500, KIND_429, KIND_DELAY, KIND_DROP})

# Kubernetes verbs by HTTP method; GET is "get", "list" or "watch" depending on the path.
_VERB_METHODS = {
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
    "get": "GET",
    "list": "GET",
    "watch": "GET",
}


@dataclass
class Fault:
    kind: str
    verb: str | None = None  # an HTTP method ("GET") or a Kubernetes verb ("watch", "create")
    path_regex: str | None = None  # searched in the path including its query string
    remaining: int = 1
    retry_after: int = 1
    delay: float = 30.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.path_regex is not None and not re.search(self.path_regex, path):
            return False
        if self.verb is None:
            return True
        verb = self.verb.lower()
        if verb not in _VERB_METHODS:
            return method.upper() == self.verb.upper()
        if method.upper() != _VERB_METHODS[verb]:
            return False
        if verb == "watch":
            return is_watch(path)
        if verb in {"get", "list"}:
            return not is_watch(path)
        return True

    def error(self) -> APIError:
        """The response of a 500 or 429 fault, as the real API server words it."""
        if self.kind == KIND_429:
            return APIError(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                {"causes": [{"message": "injected fault"}], "retryAfterSeconds": self.retry_after},
                headers={"Retry-After": str(self.retry_after)},
            )
        return APIError(
            500,
            "InternalError",
            "Internal error occurred: injected fault",
            {"causes": [{"message": "injected fault"}]},
        )


def is_watch(path: str) -> bool:
    parts = urlsplit(path)
    if "/watch/" in parts.path:
        return True
    return parse_qs(parts.query).get("watch", [""])[0].lower() in {"true", "1"}


class FaultInjector:
    """Armed faults, consumed in order of arming; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._close_watches: Callable[[], None] | None = None
        self._expire: Callable[[], None] | None = None
        self._restart: Callable[[], None] | None = None

    def add(
        self,
        verb: str | None = None,
        path_regex: str | None = None,
        count: int = 1,
        kind: str = KIND_500,
        retry_after: int = 1,
        delay: float = 30.0,
    ) -> Fault:
        """Fail the next ``count`` requests matching ``verb`` and ``path_regex`` with ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {sorted(KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if path_regex is not None:
            re.compile(path_regex)
        fault = Fault(kind, verb, path_regex, count, retry_after, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def check(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any; each match uses up one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    fault.hits += 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def bind(
        self,
        close_watches: Callable[[], None] | None = None,
        expire_resource_versions: Callable[[], None] | None = None,
        restart: Callable[[], None] | None = None,
    ) -> None:
        """Called by the server with its implementations of the cluster-wide faults."""
        self._close_watches = close_watches or self._close_watches
        self._expire = expire_resource_versions or self._expire
        self._restart = restart or self._restart

    def close_watches(self) -> None:
        """End every open watch stream, as an API server restart or a load balancer timeout does."""
        self._call(self._close_watches, "close_watches")

    def expire_resource_versions(self) -> None:
        """Forget the event history, so resuming a watch from any earlier version gets 410 Gone."""
        self._call(self._expire, "expire_resource_versions")

    def restart(self) -> None:
        """Stop the server and start it again on the same port with the same state."""
        self._call(self._restart, "restart")

    @staticmethod
    def _call(hook: Callable[[], None] | None, name: str) -> None:
        if hook is None:
            raise RuntimeError(f"the simulated API server has not bound the {name} fault")
        hook()
