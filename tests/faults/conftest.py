"""The product under faults: the simulated cluster (fault injection), a real Celery worker, the watcher.

The worker uses Redis when ``REDIS_URL`` is set (CI), on a database number of its own, else an
in-memory broker private to the test. Every request the API server receives is recorded, so tests
can prove that an armed fault was hit and what the client did next.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from coderadmin.celery import app as celery_app
from environments.models import Environment
from infrastructure import gateway as gw
from infrastructure import labels
from infrastructure.simulator.testing import ClusterHandle
from infrastructure.watcher import Watcher
from tests.environments import cluster_support as cs

REDIS_TEST_DB = 13  # the fault suites' own Redis database, flushed of queued tasks around each test
PODS = r"/namespaces/coderadmin-environments/pods(\?|$)"
POD = r"/namespaces/coderadmin-environments/pods/[^/?]+(\?|$)"
CLAIMS = r"/namespaces/coderadmin-environments/persistentvolumeclaims(\?|$)"
CLAIM = r"/namespaces/coderadmin-environments/persistentvolumeclaims/[^/?]+(\?|$)"


def broker_url() -> str:
    """Redis (own database number) when the run has Redis, else a fresh in-memory broker."""
    if settings.REDIS_URL:
        parts = urlsplit(settings.REDIS_URL)
        return urlunsplit(parts._replace(path=f"/{REDIS_TEST_DB}"))
    return f"memory://localhost/{uuid.uuid4().hex}"


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point the product's Celery app at ``url`` (both setting spellings), restoring it afterwards."""
    overrides = {
        "broker_url": url,
        "task_always_eager": False,
        "broker_transport_options": {"polling_interval": 0.05},
    }
    keys = [name for key in overrides for name in (key, f"CELERY_{key.upper()}")]
    saved = {name: celery_app.conf.get(name) for name in keys}
    celery_app.conf.update({name: overrides[name.removeprefix("CELERY_").lower()] for name in keys})
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        celery_app.conf.update(saved)
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


@contextmanager
def celery_worker(url: str | None = None) -> Iterator[None]:
    """A real Celery worker in a thread; its queue is emptied before and after."""
    with celery_broker(url or broker_url()):
        celery_app.control.purge()
        try:
            with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=10):
                yield
        finally:
            celery_app.control.purge()


@dataclass
class Request:
    at: float
    method: str
    path: str
    fault: str | None


@dataclass
class RequestLog:
    """Every request the simulated API server checked for faults, in order."""

    entries: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matching(self, method: str, path_regex: str) -> list[Request]:
        with self.lock:
            return [r for r in self.entries if r.method == method and re.search(path_regex, r.path)]


@dataclass
class Stack:
    handle: ClusterHandle
    gateway: gw.Gateway
    requests: RequestLog
    watcher: Watcher

    @property
    def faults(self):
        return self.handle.cluster.faults


def record_requests(handle: ClusterHandle) -> RequestLog:
    log = RequestLog()
    injector = handle.cluster.faults
    check = injector.check

    def recording(method: str, path: str):
        fault = check(method, path)
        with log.lock:
            log.entries.append(Request(time.monotonic(), method, path, fault.kind if fault else None))
        return fault

    injector.check = recording
    return log


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """``stack(profile="demo", scale=0.002, **watcher_options)``: cluster, worker and watcher."""
    with ExitStack() as exits:

        def start(profile: str = "demo", scale: float = 0.002, **watcher_options: Any) -> Stack:
            watcher_options.setdefault("watch_timeout", 2)  # short streams: the watcher stops quickly
            handle = exits.enter_context(cs.running_profile(profile, tmp_path, scale=scale))
            requests = record_requests(handle)
            exits.enter_context(cs.sqlite_waits_for_locks())
            exits.enter_context(celery_worker())
            watcher = exits.enter_context(
                cs.running_watcher(gw.Gateway(handle.api_client), tmp_path, **watcher_options)
            )
            return Stack(handle, gw.Gateway(handle.api_client), requests, watcher)

        yield start


def pods_of(gateway: gw.Gateway, env: Environment) -> list[dict[str, Any]]:
    """Every live pod carrying the environment's labels: more than one would be a duplicate."""
    items = gateway.list("Pod", cs.NAMESPACE, label_selector=labels.environment_selector(env.pk))["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def events(env: Environment, message_start: str) -> int:
    return env.events.filter(message__startswith=message_start).count()
