"""The product's provisioning stack on a simulated cluster, instrumented from outside.

``provisioning_stack(workers=n)`` starts a simulated cluster (a profile on the fast clock), points
the gateway at it, starts ``n`` Celery worker *processes* (solo pool, or ``threads`` threads each,
on a queue private to this run, over Redis database 15 or the filesystem broker) and the watcher in
a thread. A ``Probe``
records, without any hook in product code:

- every authenticated request the API server receives (by wrapping the cluster's fault injector,
  which the HTTP layer consults once per authenticated request),
- when each pod was created and first became Ready (a store subscription),
- when each environment's Running state was committed (a ``post_save`` receiver that waits for the
  commit; the watcher runs in this process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _support

NAMESPACE = "coderadmin-environments"
SYSTEMD_IMAGE = "ghcr.io/coderadmin/example-systemd"


@dataclass
class Probe:
    """What the API server and the database saw, with ``time.perf_counter()`` stamps."""

    requests: list[tuple[float, str, str]] = field(default_factory=list)
    pod_created: dict[str, float] = field(default_factory=dict)
    pod_creates: Counter = field(default_factory=Counter)
    pod_ready: dict[str, float] = field(default_factory=dict)
    env_running: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_request(self, method: str, path: str) -> None:
        with self.lock:
            self.requests.append((time.perf_counter(), method, path))

    def on_store_event(self, event: Any) -> None:
        if event.rt.plural != "pods":
            return
        now = time.perf_counter()
        name = event.obj["metadata"]["name"]
        if event.type == "ADDED":
            self.pod_creates[name] += 1
            self.pod_created.setdefault(name, now)
        conditions = (event.obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            self.pod_ready.setdefault(name, now)

    def on_environment_saved(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        from django.db import transaction

        from environments.states import State

        if instance.state == State.RUNNING and instance.pod_name not in self.env_running:
            pod = instance.pod_name
            transaction.on_commit(lambda: self.env_running.setdefault(pod, time.perf_counter()))

    def requests_between(self, start: float, end: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [r for r in self.requests if start <= r[0] <= end]


def classify(method: str, path: str) -> str:
    """write, read, watch or log: how the product used the API."""
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        return "write"
    if "watch=" in path:
        return "watch"
    if path.split("?")[0].endswith("/log"):
        return "log"
    return "read"


@dataclass
class Stack:
    probe: Probe
    handle: Any
    var_dir: Path


def _start_worker(
    index: int, queue: str, env: dict[str, str], folder: Path, threads: int = 1
) -> subprocess.Popen:
    log = folder / f"worker-{index}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "coderadmin",
                "worker",
                # Build tasks wait on the API server, so a process runs several at once in threads.
                *(
                    ("--pool", "threads", "--concurrency", str(threads))
                    if threads > 1
                    else ("--pool", "solo")
                ),
                "--queues",
                queue,
                "--hostname",
                f"bench{index}-{os.getpid()}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=_support.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker {index} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def _stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def provisioning_stack(workers: int, profile: str = "demo", threads: int = 1) -> Iterator[Stack]:
    """The cluster, ``workers`` worker processes and the watcher, with CVMs enabled (supervising
    container backend) and a systemd image; the probe is live before anything is created."""
    from django.db import connections
    from django.db.models.signals import post_save

    from coderadmin.celery import app as celery_app
    from environments.models import Environment
    from infrastructure import gateway as gw
    from infrastructure.simulator.clock import Clock
    from infrastructure.simulator.cluster import SimulatedCluster
    from infrastructure.simulator.profiles import load_profile
    from infrastructure.simulator.testing import ClusterHandle
    from infrastructure.watcher import Watcher

    folder = _support.var_dir() / f"stack-{time.monotonic_ns()}"
    folder.mkdir()
    probe = Probe()
    cluster = SimulatedCluster(bookmark_interval=0.5)
    check = cluster.faults.check

    def counted_check(method: str, path: str) -> Any:
        probe.on_request(method, path)
        return check(method, path)

    cluster.faults.check = counted_check
    load_profile(cluster, profile, Clock.fast())
    unsubscribe = cluster.store.subscribe(probe.on_store_event)
    cluster.start()
    handle = ClusterHandle(cluster, cluster.write_kubeconfig(folder / "kubeconfig"))
    gw.reset_api_client(handle.api_client)
    post_save.connect(probe.on_environment_saved, sender=Environment)
    queue = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    saved_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    env = {**os.environ, "CODERADMIN_CLUSTER": "kubeconfig", "KUBECONFIG": str(handle.kubeconfig_path)}
    processes: list[subprocess.Popen] = []
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        for index in range(workers):
            processes.append(_start_worker(index, queue, env, folder, threads))
        watcher = Watcher(
            gw.Gateway(handle.api_client),
            namespace=NAMESPACE,
            identity=f"bench-{os.getpid()}",
            heartbeat_path=folder / "heartbeat",
            watch_timeout=30,
        )
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not watcher.leading.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield Stack(probe=probe, handle=handle, var_dir=folder)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
        for process in processes:
            _stop_process(process)
        _purge(celery_app, queue)
        celery_app.conf.task_default_queue = saved_queue
        post_save.disconnect(probe.on_environment_saved, sender=Environment)
        gw.reset_api_client(None)
        unsubscribe()
        handle.close()
        connections.close_all()


def _purge(celery_app: Any, queue: str) -> None:
    """Drop what is left on this run's queue (nothing, after a clean run)."""
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def prepare_cvm(owners: int, prefix: str) -> tuple[list[Any], Any]:
    """CVMs enabled on the supervising-container backend, ``owners`` members and the systemd image."""
    from django.contrib.auth.models import Group

    from coderadmin.models import User
    from coderadmin.roles import Role
    from environments.models import Image, ImageTag
    from infrastructure.models import CvmBackend, InfrastructureSettings

    settings = InfrastructureSettings.load()
    settings.cvm_enabled = True
    settings.cvm_backend = CvmBackend.SUPERVISOR
    settings.environments_namespace = NAMESPACE
    settings.save()
    image = Image.objects.filter(repository=SYSTEMD_IMAGE).first()
    if image is None:
        image = Image.objects.create(repository=SYSTEMD_IMAGE, min_cpu_millicores=100, min_memory_mib=128)
        ImageTag.objects.create(image=image, tag="1", is_default=True)
    member = Group.objects.get(name=Role.MEMBER.value)
    users = []
    for n in range(owners):
        user = User.objects.create_user(username=f"{prefix}{n}", password=None)
        user.groups.add(member)
        users.append(user)
    return users, image


def create_cvm(owner: Any, image: Any, name: str) -> Any:
    from environments import services

    return services.environment_create(
        owner=owner,
        name=name,
        image=image,
        tag="1",
        cpu_millicores=100,
        memory_mib=256,
        disk_gib=1,
        gpu_count=0,
        cvm=True,
    )


def wait_final(ids: list[int], timeout: float) -> dict[str, int]:
    """Poll until every environment is Running or Error; the count of each state at the end."""
    from environments.models import Environment
    from environments.states import State

    deadline = time.monotonic() + timeout
    while True:
        states = Counter(Environment.objects.filter(pk__in=ids).values_list("state", flat=True))
        if states[State.RUNNING] + states[State.ERROR] >= len(ids) or time.monotonic() > deadline:
            return dict(states)
        time.sleep(0.1)


def running_event_counts(ids: list[int]) -> Counter:
    """How many times each environment was reported Running (its "Environment is running" events)."""
    from environments.models import EnvironmentEvent

    return Counter(
        EnvironmentEvent.objects.filter(
            environment_id__in=ids, message__startswith="Environment is running"
        ).values_list("environment_id", flat=True)
    )


def error_reasons(ids: list[int]) -> list[str]:
    from environments.models import Environment
    from environments.states import State

    return list(
        Environment.objects.filter(pk__in=ids, state=State.ERROR).values_list("status_reason", flat=True)[:3]
    )


def forget_environments() -> None:
    """Drop every environment row (after the stack stopped writing), so the next run starts empty."""
    from environments.models import Environment

    Environment.objects.all().delete()


def wait_for(predicate: Any, timeout: float) -> None:
    """Poll ``predicate`` until true; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout} s")
        time.sleep(0.01)


def report_unfinished(ids: list[int]) -> None:
    """On stderr: the state and last events of every environment that is not Running, so a stuck
    build in a benchmark run can be diagnosed from its output."""
    from environments.models import Environment
    from environments.states import State

    for env in Environment.objects.filter(pk__in=ids).exclude(state=State.RUNNING):
        events = list(env.events.order_by("-id").values_list("source", "message")[:5])
        print(
            f"{env.name} ({env.pod_name}) is {env.state}: {env.status_reason!r}; last events {events}",
            file=sys.stderr,
        )
