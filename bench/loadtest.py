"""Load test of the production setup on this machine: gunicorn (2 processes, threads as in the
Dockerfile) + PostgreSQL + Redis, 10,000 environments across 1,000 members, driven over loopback by a
Python load generator (threads, keep-alive ``http.client`` connections) for a bounded time.

Scenarios, each after a short warm-up:
- ``/healthz``, the trivial baseline: what the server stack costs without any application work;
- mixed authenticated reads as members make them: the environments list (40 %), an environment page
  (30 %) and its live-status partial as htmx polls it (30 %), each as a random one of 200 signed-in
  members (sessions forged with ``SessionStore``, as a login would create them).

Goal (issue 10): at least 180 requests/s with p95 under 200 ms and no errors for the mixed reads.
The run creates and drops its own PostgreSQL database ``coderadmin_bench_load_<pid>`` (on the server
of ``DATABASE_URL`` when it names PostgreSQL, else 127.0.0.1:5432) and uses Redis database 15.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from bench import _support
from bench._support import ms, percentile, row

WORKERS = 2
THREADS = int(os.environ.get("GUNICORN_THREADS", "2"))  # the Dockerfile's default
CONNECTIONS = 8
SESSIONS = 200
MIX = (("list", 0.4), ("detail", 0.3), ("live", 0.3))
OK_STATUSES = {200, 286}  # 286: the live partial telling htmx to stop polling a settled environment


@dataclass
class Sizes:
    users: int
    environments: int
    seconds: float
    warmup: float


FULL = Sizes(users=1_000, environments=10_000, seconds=30, warmup=3)
QUICK = Sizes(users=20, environments=200, seconds=3, warmup=0.5)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python(args: list[str], env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=_support.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _wait_healthy(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer:\n{log.read_text()[-3000:]}")


def _requests_for(plan: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Weighted (kind, path, headers) choices for the mixed scenario, per forged session."""
    cookie = plan["cookie_name"]
    choices = []
    for session in plan["sessions"]:
        headers = {"Cookie": f"{cookie}={session['key']}"}
        for pk in session["environments"]:
            choices.append(("list", "/environments/", headers))
            choices.append(("detail", f"/environments/{pk}/", headers))
            choices.append(("live", f"/environments/{pk}/live/", {**headers, "HX-Request": "true"}))
    return choices


def _drive(port: int, pick: Any, seconds: float) -> Result:
    """``CONNECTIONS`` threads, each one keep-alive connection, requesting ``pick()`` until time is up."""
    result = Result()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        while time.perf_counter() < deadline:
            path, headers = pick()
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status not in OK_STATUSES:
                errors += 1
        conn.close()
        with lock:
            result.latencies.extend(mine)
            result.errors += errors
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def _scenario(
    label: str, port: int, pick: Any, sizes: Sizes, goals: bool
) -> tuple[list[dict[str, Any]], float]:
    _drive(port, pick, sizes.warmup)
    result = _drive(port, pick, sizes.seconds)
    if not result.latencies:
        raise RuntimeError(f"{label}: no request answered (statuses {result.statuses})")
    rps = len(result.latencies) / sizes.seconds
    lat = result.latencies
    rows = [
        row(f"{label}: requests/s", round(rps), "req/s", "≥ 180" if goals else ""),
        row(f"{label}: p50", ms(percentile(lat, 0.5)), "ms"),
        row(f"{label}: p95", ms(percentile(lat, 0.95)), "ms", "< 200 ms" if goals else ""),
        row(f"{label}: p99", ms(percentile(lat, 0.99)), "ms"),
        row(f"{label}: errors", f"{result.errors} of {len(lat) + result.errors}", "", "0" if goals else ""),
    ]
    return rows, rps


def _load(sizes: Sizes, env: dict[str, str], folder: Path) -> list[dict[str, Any]]:
    _python(["manage.py", "migrate", "--verbosity", "0"], env, 600)
    plan = json.loads(
        _python(["-m", "bench.loadtest", "seed", str(sizes.users), str(sizes.environments)], env, 600)
    )
    port = _free_port()
    log = folder / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "coderadmin.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--timeout",
        "60",
        "--keep-alive",
        "5",
        "--no-control-socket",
    ]
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=_support.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(port, server, log)
        setup = f"{WORKERS}x{THREADS} gunicorn, {CONNECTIONS} conns, {sizes.seconds:g} s"
        health_rows, health_rps = _scenario(
            f"load /healthz baseline ({setup})", port, lambda: ("/healthz", {}), sizes, goals=False
        )
        choices = _requests_for(plan)
        by_kind = {kind: [c for c in choices if c[0] == kind] for kind, _ in MIX}
        rng = random.Random(10)
        kinds, weights = zip(*MIX, strict=True)

        def pick() -> tuple[str, dict[str, str]]:
            _kind, path, headers = rng.choice(by_kind[rng.choices(kinds, weights)[0]])
            return path, headers

        label = f"load mixed reads, {sizes.environments} envs/{sizes.users} users ({setup})"
        mixed_rows, mixed_rps = _scenario(label, port, pick, sizes, goals=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    ratio = row("load mixed reads rps / /healthz rps", round(mixed_rps / health_rps, 3), "ratio")
    return [*health_rows, *mixed_rows, ratio]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The load test (a few seconds on a small data set with ``quick``)."""
    sizes = QUICK if quick else FULL
    server = _support.postgres_server() or _support.LOCAL_POSTGRES
    redis = _support.redis_url()
    if not redis or not _support.postgres_reachable(server):
        return [row("load test", "not run", "", "needs PostgreSQL and Redis on 127.0.0.1")]
    name = f"coderadmin_bench_load_{os.getpid()}"
    folder = _support.var_dir() / "load"
    folder.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **_support.base_environment(folder),
        "DATABASE_URL": _support.create_postgres_database(server, name),
        "REDIS_URL": redis,
    }
    try:
        return _load(sizes, env, folder)
    finally:
        _support.drop_postgres_database(server, name)


def seed(users: int, environments: int) -> dict[str, Any]:
    """Runs inside a subprocess on the load test's database: members, environments and forged
    sessions (what a login stores), returned for the load generator."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from environments.models import Environment

    session_store = import_module(settings.SESSION_ENGINE).SessionStore
    members, _image = _support.seed_environments(environments, users, prefix="load")
    owned: dict[int, list[int]] = {}
    for pk, owner in Environment.objects.values_list("pk", "owner_id"):
        owned.setdefault(owner, []).append(pk)
    sessions = []
    for user in members[:SESSIONS]:
        store = session_store()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        sessions.append({"key": store.session_key, "environments": owned.get(user.pk, [])})
    return {"cookie_name": settings.SESSION_COOKIE_NAME, "sessions": sessions}


if __name__ == "__main__":
    if sys.argv[1:2] != ["seed"]:
        raise SystemExit("usage: python -m bench.loadtest seed USERS ENVIRONMENTS (used by run())")
    print(json.dumps(seed(int(sys.argv[2]), int(sys.argv[3]))))
