"""The database goes away under the running watcher: it reconnects and keeps applying the cluster's
changes.

On PostgreSQL the server side of every connection but the test's own is terminated
(``pg_terminate_backend``), which is what a database restart does to clients. SQLite has no server to
restart and its in-memory test database cannot be closed, so there the watcher's connection raises the
error of a dropped connection on its next statement instead.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created

from environments import services
from environments.states import State
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PLAIN = "ghcr.io/coderadmin/example-plain"


class ConnectionsByThread:
    """Remembers the newest database connection each thread opened."""

    def __init__(self) -> None:
        self.by_thread: dict[threading.Thread, Any] = {}

    def __call__(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        self.by_thread[threading.current_thread()] = connection

    def of(self, target: Any) -> Any:
        for thread, conn in self.by_thread.items():
            if getattr(thread, "_target", None) == target:
                return conn
        raise AssertionError(f"no database connection was opened by the thread running {target}")


def backend_pid(conn: Any) -> int:
    return conn.connection.info.backend_pid


def drop_connection(conn: Any) -> list[str]:
    """Kill the connection from the database side; returns what was done, for the assertion message."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [f"terminated {cursor.rowcount} backends"]
    failed: list[str] = []

    def fail_once(execute, sql, params, many, context):
        if not failed:
            failed.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    conn.execute_wrappers.append(fail_once)
    return failed


def test_the_watcher_reconnects_after_losing_its_database_connection(stack):
    seen = ConnectionsByThread()
    connection_created.connect(seen)
    try:
        s = stack()
        cs.configure()
        owner = make_user()
        image = cs.image(PLAIN)
        before = cs.wait_state(cs.create(owner, image, name="before"), State.RUNNING)
        watcher_conn = seen.of(s.watcher.run)
        old_pid = backend_pid(watcher_conn) if connection.vendor == "postgresql" else None

        done = drop_connection(watcher_conn)

        after = cs.wait_state(cs.create(owner, image, name="after"), State.RUNNING, timeout=30)
        services.environment_stop(before, actor=owner)
        cs.wait_state(before, State.OFF, timeout=30)
        assert after.node_name
        if connection.vendor == "postgresql":
            assert backend_pid(seen.of(s.watcher.run)) != old_pid, done
        else:
            assert done, "the watcher never used its connection after it was dropped"
        cs.assert_no_leaks(s.gateway)
    finally:
        connection_created.disconnect(seen)
