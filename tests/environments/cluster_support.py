"""Helpers of the provisioning tests: a simulated cluster running a profile, the product's gateway
pointed at it, a real Celery worker, the watcher, and the "no leaked objects" check."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, connection, transaction
from django.db.backends.signals import connection_created

from coderadmin.celery import app as celery_app
from environments import services
from environments.models import Environment, Image, ImageTag
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import labels
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.simulator.clock import Clock
from infrastructure.simulator.cluster import SimulatedCluster
from infrastructure.simulator.profiles import load_profile
from infrastructure.simulator.testing import ClusterHandle
from infrastructure.watcher import Watcher

NAMESPACE = "coderadmin-environments"
OBJECT_KINDS = ("Pod", "PersistentVolumeClaim", "Secret", "NetworkPolicy")


@contextmanager
def running_profile(name: str, directory: Path, scale: float | None = None) -> Iterator[ClusterHandle]:
    """A simulated cluster with the profile's nodes and kubelet on a fast clock; the product's
    gateway uses it for the duration."""
    cluster = SimulatedCluster(bookmark_interval=0.2)
    load_profile(cluster, name, Clock(scale) if scale is not None else Clock.fast())
    cluster.start()
    handle = ClusterHandle(cluster, cluster.write_kubeconfig(directory / "kubeconfig"))
    gw.reset_api_client(handle.api_client)
    try:
        yield handle
    finally:
        gw.reset_api_client(None)
        handle.close()


class CountingGateway(gw.Gateway):
    """The product's gateway, counting requests by verb and kind (what the API server receives)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.calls.append(("create", obj["kind"]))
        return super().create(obj, dry_run=dry_run)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        self.calls.append(("get", kind))
        return super().get(kind, namespace, name)

    def list(self, kind: str, namespace: str | None = None, **query: Any) -> dict[str, Any]:
        self.calls.append(("list", kind))
        return super().list(kind, namespace, **query)

    def patch(self, kind: str, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        self.calls.append(("patch", kind))
        return super().patch(kind, namespace, name, body)

    def delete_if_exists(self, kind: str, namespace: str | None, name: str, **options: Any) -> bool:
        self.calls.append(("delete", kind))
        return super().delete_if_exists(kind, namespace, name, **options)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("replace", obj["kind"]))
        return super().replace(obj)

    def watch(self, kind: str, namespace: str | None, **options: Any):
        self.calls.append(("watch", kind))
        return super().watch(kind, namespace, **options)

    def follow_pod_log(self, namespace: str, name: str, container: str | None = None, **options: Any):
        self.calls.append(("log", "Pod"))
        return super().follow_pod_log(namespace, name, container, **options)

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] in {"create", "patch", "delete"}]


def eventually(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.05)


def state_of(env: Environment) -> str | None:
    return Environment.objects.filter(pk=env.pk).values_list("state", flat=True).first()


def wait_state(env: Environment, *states: State, timeout: float = 20.0) -> Environment:
    def reached() -> bool:
        return state_of(env) in states

    try:
        eventually(reached, timeout, f"state {states}")
    except AssertionError:
        row = Environment.objects.filter(pk=env.pk).first()
        events = list(row.events.values_list("source", "message")) if row else []
        raise AssertionError(f"{env.name}: still {state_of(env)}; events {events}") from None
    return Environment.objects.select_related("owner", "image").get(pk=env.pk)


def cluster_objects(gateway: gw.Gateway, namespace: str = NAMESPACE) -> set[tuple[str, str]]:
    """(kind, name) of every object carrying our labels, terminating ones excluded."""
    found = set()
    for kind in OBJECT_KINDS:
        for item in gateway.list(kind, namespace, label_selector=labels.MANAGED_SELECTOR).get("items") or []:
            if not item["metadata"].get("deletionTimestamp"):
                found.add((kind, item["metadata"]["name"]))
    return found


def expected_objects() -> set[tuple[str, str]]:
    """What the database says should exist: every environment has its claim and policy; a pod (and
    a private image's pull secret) while it is meant to run."""
    expected = set()
    for env in Environment.objects.select_related("image"):
        if env.state == State.DELETING:
            continue
        expected |= {("PersistentVolumeClaim", env.pvc_name), ("NetworkPolicy", env.network_policy_name)}
        if env.state in (State.BUILDING, State.RUNNING):
            expected.add(("Pod", env.pod_name))
            if env.image.has_registry_credentials:
                expected.add(("Secret", env.registry_secret_name))
    return expected


def assert_no_leaks(gateway: gw.Gateway, timeout: float = 20.0) -> None:
    """Listing the cluster by our labels shows exactly what the database says should exist."""

    def matches() -> bool:
        return cluster_objects(gateway) == expected_objects()

    try:
        eventually(matches, timeout, "cluster matching the database")
    except AssertionError:
        raise AssertionError(f"cluster {cluster_objects(gateway)} != database {expected_objects()}") from None


def configure(
    *, cvm: bool = False, backend: str = CvmBackend.SUPERVISOR, **fields: Any
) -> InfrastructureSettings:
    settings = InfrastructureSettings.load()
    settings.cvm_enabled = cvm
    settings.cvm_backend = backend
    settings.supervisor_image = "ghcr.io/coderadmin/coderadmin-supervisor:0.1.0"
    settings.build_timeout_seconds = fields.pop("build_timeout_seconds", 900)
    for key, value in fields.items():
        setattr(settings, key, value)
    settings.save()
    return settings


def image(repository: str, tag: str = "1", **fields: Any) -> Image:
    password = fields.pop("registry_password", None)
    img = Image(repository=repository, **fields)
    if password:
        img.registry_password = password
    img.save()
    ImageTag.objects.create(image=img, tag=tag, is_default=True)
    return img


def create(owner: Any, img: Image, name: str = "web", *, cvm: bool = False, **resources: Any) -> Environment:
    values = {"cpu_millicores": 500, "memory_mib": 1024, "disk_gib": 5, "gpu_count": 0}
    values.update(resources)
    tag = img.tags.get(is_default=True).tag
    return services.environment_create(owner=owner, name=name, image=img, tag=tag, cvm=cvm, **values)


@contextmanager
def celery_worker() -> Iterator[None]:
    """A real Celery worker in a thread, on an in-memory broker private to this test (with the
    SQLite test database shared safely, see ``sqlite_waits_for_locks``)."""
    overrides = {
        "broker_url": f"memory://localhost/{uuid.uuid4().hex}",
        "task_always_eager": False,
        "broker_transport_options": {"polling_interval": 0.05},
    }
    # Settings come from Django's CELERY_* names; set both spellings so the override wins.
    keys = [name for key in overrides for name in (key, f"CELERY_{key.upper()}")]
    saved = {name: celery_app.conf.get(name) for name in keys}
    celery_app.conf.update({name: overrides[name.removeprefix("CELERY_").lower()] for name in keys})
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.control.purge()  # the in-memory broker is per process: start from an empty queue
    try:
        with (
            sqlite_waits_for_locks(),
            start_worker(celery_app, perform_ping_check=False, shutdown_timeout=10),
        ):
            yield
    finally:
        celery_app.control.purge()
        celery_app.conf.update(saved)
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


@contextmanager
def running_watcher(
    gateway: gw.Gateway | None = None, tmp: Path | None = None, **options: Any
) -> Iterator[Watcher]:
    stop = threading.Event()
    watcher = Watcher(
        gateway or gw.Gateway(),
        namespace=NAMESPACE,
        identity=options.pop("identity", "test-watcher"),
        heartbeat_path=(tmp / "heartbeat") if tmp else None,
        watch_timeout=options.pop("watch_timeout", 5),
        unreachable_after=options.pop("unreachable_after", 60.0),
        **options,
    )
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    with sqlite_waits_for_locks():
        thread.start()
        try:
            yield watcher
        finally:
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the watcher did not stop"


LOCK_RETRIES = 3000  # x 10 ms


def _retry_locked(execute, sql, params, many, context):
    for attempt in range(LOCK_RETRIES):
        try:
            return execute(sql, params, many, context)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.01)
    return None


def _add_retry(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite" and _retry_locked not in connection.execute_wrappers:
        connection.ensure_connection()
        # Readers take no table locks, so a writer waiting for another writer holds nothing the
        # other one needs: retrying the statement cannot deadlock.
        connection.connection.execute("PRAGMA read_uncommitted = 1")
        connection.execute_wrappers.append(_retry_locked)


_serial = threading.RLock()
_held = threading.local()
_active: list[bool] = []


def _serialised(enter: Callable[..., Any], exit_: Callable[..., Any]) -> tuple[Callable, Callable]:
    """Outermost atomic blocks on SQLite take one process-wide lock, as SQLite itself lets one
    writer at a time (select_for_update is a no-op there, so this is what serialises services)."""

    def patched_enter(self: Any) -> None:
        conn = transaction.get_connection(self.using)
        outermost = conn.vendor == "sqlite" and not conn.in_atomic_block
        stack = _held.__dict__.setdefault("stack", [])
        stack.append(outermost)
        if outermost:
            _serial.acquire()
        try:
            enter(self)
        except BaseException:
            stack.pop()
            if outermost:
                _serial.release()
            raise

    def patched_exit(self: Any, *exc: Any) -> None:
        try:
            exit_(self, *exc)
        finally:
            if _held.stack.pop():
                _serial.release()

    return patched_enter, patched_exit


@contextmanager
def sqlite_waits_for_locks() -> Iterator[None]:
    """SQLite's in-memory test database (shared cache) fails at once when another thread holds a
    table lock, where a file database would wait (busy timeout) and let one writer at a time. Here
    transactions take turns and statements retry, so the worker, the watcher and the test share
    the database. No-op elsewhere; the row locks themselves are exercised on PostgreSQL."""
    if _active:  # nested (a worker and a watcher in one test): the outer one did it all
        yield
        return
    original = (transaction.Atomic.__enter__, transaction.Atomic.__exit__)
    transaction.Atomic.__enter__, transaction.Atomic.__exit__ = _serialised(*original)
    connection_created.connect(_add_retry)
    _add_retry(None, connection)
    _active.append(True)
    try:
        yield
    finally:
        _active.pop()
        transaction.Atomic.__enter__, transaction.Atomic.__exit__ = original
        connection_created.disconnect(_add_retry)
        if _retry_locked in connection.execute_wrappers:
            connection.execute_wrappers.remove(_retry_locked)
            connection.connection.execute("PRAGMA read_uncommitted = 0")
