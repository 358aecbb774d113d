"""Plumbing shared by the benchmarks: a private database with Django set up on it, a private Redis
database for the broker, percentiles and result rows.

The benchmarks never touch the product's own data: ``setup_django()`` points this process (and the
worker processes it starts) at a fresh database that is dropped when the process exits — PostgreSQL
``coderadmin_bench_<pid>`` on the server of ``DATABASE_URL`` when that names PostgreSQL, otherwise a
SQLite file in a temporary folder — and at Redis database 15 on 127.0.0.1 when Redis answers there.
"""

from __future__ import annotations

import atexit
import math
import os
import secrets
import shutil
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
REDIS_DB = 15
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
# Captured before setup_django() replaces it, so every database is created on the user's server.
ORIGINAL_DATABASE_URL = os.environ.get("DATABASE_URL", "")

_state: dict[str, Any] = {}


def row(benchmark: str, value: Any, unit: str = "", goal: str = "") -> dict[str, Any]:
    """One line of the table."""
    return {"benchmark": benchmark, "value": value, "unit": unit, "goal": goal}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def median_ms(values: list[float]) -> float:
    return ms(statistics.median(values))


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(server_url: str):
    import psycopg

    parts = urlsplit(with_database(server_url, "postgres"))
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


def postgres_reachable(server_url: str) -> bool:
    import psycopg

    try:
        _admin_connection(server_url).close()
    except psycopg.Error:
        return False
    return True


def create_postgres_database(server_url: str, name: str) -> str:
    """Create database ``name`` (dropping a leftover of that name) and return its URL."""
    with _admin_connection(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_postgres_database(server_url: str, name: str) -> None:
    with _admin_connection(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url() -> str:
    """Redis database 15 on 127.0.0.1 when Redis answers, else ''."""
    import redis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return ""
    return url


def postgres_server() -> str:
    """The PostgreSQL server of ``DATABASE_URL`` when it names one, else ''."""
    return ORIGINAL_DATABASE_URL if ORIGINAL_DATABASE_URL.startswith(("postgres", "pgsql")) else ""


def base_environment(var_dir: Path) -> dict[str, str]:
    """Settings every benchmark process shares: production mode on loopback, no HTTPS redirect,
    static files without a manifest (no collectstatic needed), quiet logs."""
    return {
        "DJANGO_SETTINGS_MODULE": "coderadmin.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "ALLOW_SIMULATED_CLUSTER": "true",
        "CODERADMIN_VAR_DIR": str(var_dir),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "STATIC_MANIFEST": "false",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "plain",
    }


def var_dir() -> Path:
    """A temporary folder for this process's benchmark state, removed at exit."""
    if "var_dir" not in _state:
        path = Path(tempfile.mkdtemp(prefix="coderadmin-bench-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _state["var_dir"] = path
    return _state["var_dir"]


def setup_django() -> None:
    """Django on a private, migrated database (once per process; a no-op when Django is already
    configured, as under pytest)."""
    from django.conf import settings

    if _state.get("django") or settings.configured:
        return
    import django
    from django.core.management import call_command

    folder = var_dir()
    os.environ.update(base_environment(folder))
    server = postgres_server()
    if server:
        name = f"coderadmin_bench_{os.getpid()}"
        os.environ["DATABASE_URL"] = create_postgres_database(server, name)
        atexit.register(_drop_after_close, server, name)
    else:
        os.environ["DATABASE_URL"] = (
            f"sqlite:///{folder / 'bench.sqlite3'}?timeout=60&transaction_mode=IMMEDIATE"
        )
    broker = redis_url()
    if broker:
        os.environ["REDIS_URL"] = broker
    else:
        os.environ.pop("REDIS_URL", None)
    # Static files are served from the source folders; WhiteNoise's note about STATIC_ROOT is noise here.
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers.base")
    django.setup()
    call_command("migrate", verbosity=0)
    _state["django"] = True


def _drop_after_close(server: str, name: str) -> None:
    from django.db import connections

    connections.close_all()
    drop_postgres_database(server, name)


def database_vendor() -> str:
    from django.db import connection

    return "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"


def seed_environments(total: int, owners: int, prefix: str = "u") -> tuple[list[Any], Any]:
    """``total`` environments spread evenly over ``owners`` new members (bulk inserts, Kubernetes
    names assigned, mostly Running with some Off and Error) and one image; returns the members and
    the image."""
    from django.contrib.auth.models import Group

    from coderadmin.models import User
    from coderadmin.roles import Role
    from environments.models import Environment, Image, ImageTag
    from environments.states import State
    from infrastructure.models import InfrastructureSettings

    namespace = InfrastructureSettings.load().environments_namespace
    image = Image.objects.create(repository=f"ghcr.io/coderadmin/bench-{prefix}")
    ImageTag.objects.create(image=image, tag="1", is_default=True)
    users = User.objects.bulk_create(
        User(username=f"{prefix}{n:05d}", handle=f"{prefix}{n:05d}", password="!") for n in range(owners)
    )
    member = Group.objects.get(name=Role.MEMBER.value)
    User.groups.through.objects.bulk_create(
        User.groups.through(user_id=user.pk, group_id=member.pk) for user in users
    )
    states = [State.RUNNING] * 8 + [State.OFF, State.ERROR]
    rows = []
    for n in range(total):
        owner = users[n % owners]
        base = f"{owner.handle}-env{n}"
        rows.append(
            Environment(
                owner=owner,
                name=f"env{n}",
                image=image,
                tag="1",
                cpu_millicores=500,
                memory_mib=1024,
                disk_gib=5,
                state=states[n % len(states)],
                status_reason="the image could not be pulled"
                if states[n % len(states)] == State.ERROR
                else "",
                namespace=namespace,
                pod_name=base,
                network_policy_name=base,
                pvc_name=f"{base}-data",
                registry_secret_name=f"{base}-registry",
                node_name="pool-ubuntu-a1",
                generation=1,
            )
        )
    Environment.objects.bulk_create(rows, batch_size=2000)
    return users, image
