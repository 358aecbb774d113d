"""The terminal WebSocket through the whole ASGI stack and a simulated cluster."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest
from asgiref.sync import async_to_sync

from coderadmin.models import AuditEntry
from environments import consumers, terminal
from environments.models import Environment, EnvironmentEvent
from environments.states import State
from infrastructure import gateway
from infrastructure.supervisor import contract
from tests.environments.terminal_support import (
    closing_message,
    communicator,
    exec_requests,
    read_until,
    running_environment,
)
from tests.factories import UserFactory, site_admin, site_manager

pytestmark = pytest.mark.django_db(transaction=True)
create_roles = importlib.import_module("coderadmin.migrations.0003_roles").create_roles


@pytest.fixture(autouse=True)
def terminal_settings(settings, monkeypatch):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.TERMINAL_MAX_PER_ENVIRONMENT = 2
    monkeypatch.setattr(consumers, "WATCH_INTERVAL", 0.05)
    return settings


@pytest.fixture
def cluster(simulated_cluster):
    gateway.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gateway.reset_api_client(None)


@pytest.fixture
def owner():
    return UserFactory()


def _send(comm, **message) -> None:
    return comm.send_to(text_data=json.dumps(message))


def test_output_round_trip_and_exit(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> tuple[str, int]:
        comm = communicator(environment, owner)
        connected, _ = await comm.connect()
        assert connected
        await read_until(comm, "coder@")
        await _send(comm, type="input", data="whoami\r")
        assert "coder\r\n" in await read_until(comm, "coder\r\n")
        await _send(comm, type="input", data="exit\r")
        return await closing_message(comm)

    message, code = async_to_sync(scenario)()
    assert (message, code) == ("The shell exited.", terminal.CLOSE_ENDED)
    terminal_entries = AuditEntry.objects.filter(action__startswith="environment.terminal.").order_by("id")
    actions = list(terminal_entries.values_list("action", flat=True))
    assert actions == ["environment.terminal.open", "environment.terminal.close"]
    [request] = exec_requests(cluster)
    assert (request.container, request.command) == ("workspace", ("su", "-", "coder"))
    assert request.tty and request.stdin


def test_resize_reaches_the_shell(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> str:
        comm = communicator(environment, owner)
        await comm.connect()
        await read_until(comm, "$ ")
        await _send(comm, type="resize", cols=132, rows=41)
        await _send(comm, type="input", data="stty size\r")
        output = await read_until(comm, "41 132")
        await comm.disconnect()
        return output

    assert "41 132" in async_to_sync(scenario)()


def test_cvm_exec_uses_the_supervisor_and_the_fixed_command_only(cluster, owner) -> None:
    environment = running_environment(cluster, owner, kind="supervisor")

    async def scenario() -> str:
        comm = communicator(environment, owner)
        await comm.connect()
        await read_until(comm, "coder@")
        # The browser tries to choose the container and the command: ignored.
        await _send(comm, type="exec", container="supervisor", command=["/bin/sh"])
        await _send(comm, type="input", container="supervisor", command=["id"], data="whoami\r")
        output = await read_until(comm, "coder\r\n")
        for line, expected in (("docker ps", "CONTAINER ID"), ("ps 1", "/sbin/init")):
            await _send(comm, type="input", data=line + "\r")
            output += await read_until(comm, expected)
        await comm.disconnect()
        return output

    async_to_sync(scenario)()
    [request] = exec_requests(cluster)
    assert request.container == contract.SUPERVISOR_CONTAINER_NAME
    assert request.command == (
        "docker",
        "exec",
        "-it",
        "-e",
        "TERM=xterm-256color",
        contract.INNER_CONTAINER_NAME,
        "su",
        "-",
        "coder",
    )
    assert request.command == terminal.exec_target(environment).command


def test_environment_stopping_mid_session_closes_with_a_message(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> tuple[str, int]:
        comm = communicator(environment, owner)
        await comm.connect()
        await read_until(comm, "$ ")
        await asyncio.to_thread(
            lambda: Environment.objects.filter(pk=environment.pk).update(state=State.TURNING_OFF)
        )
        return await closing_message(comm)

    message, code = async_to_sync(scenario)()
    assert message == "The environment is turning off; the terminal closed."
    assert code == terminal.CLOSE_ENDED
    assert AuditEntry.objects.filter(
        action="environment.terminal.close", message__contains="turning off"
    ).exists()


def test_environment_deleted_mid_session(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> str:
        comm = communicator(environment, owner)
        await comm.connect()
        await read_until(comm, "$ ")
        await asyncio.to_thread(lambda: Environment.objects.filter(pk=environment.pk).delete())
        return (await closing_message(comm))[0]

    assert async_to_sync(scenario)() == "The environment was deleted; the terminal closed."


def test_pod_gone_mid_session_reports_the_exit(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> str:
        comm = communicator(environment, owner)
        await comm.connect()
        await read_until(comm, "$ ")
        cluster.store.delete("pods", environment.namespace, environment.pod_name, grace_period_seconds=0)
        return (await closing_message(comm))[0]

    assert async_to_sync(scenario)() == "The shell exited with code 137."


def test_idle_timeout(cluster, owner, terminal_settings) -> None:
    terminal_settings.TERMINAL_IDLE_TIMEOUT_SECONDS = 1
    environment = running_environment(cluster, owner)

    async def scenario() -> tuple[str, int]:
        comm = communicator(environment, owner)
        await comm.connect()
        return await closing_message(comm, timeout=10)

    assert async_to_sync(scenario)() == ("Closed after 1 s without activity.", terminal.CLOSE_IDLE)


def test_maximum_session_length(cluster, owner, terminal_settings) -> None:
    terminal_settings.TERMINAL_MAX_SESSION_SECONDS = 1
    environment = running_environment(cluster, owner)

    async def scenario() -> str:
        comm = communicator(environment, owner)
        await comm.connect()
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.5
        while loop.time() < end:  # busy: input keeps the idle timer away
            await _send(comm, type="input", data="\r")
            await asyncio.sleep(0.1)
        return (await closing_message(comm))[0]

    assert async_to_sync(scenario)() == "Closed after the maximum session length of 1 s."


def test_cap_on_concurrent_terminals(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> tuple[str, int]:
        first, second, third = (communicator(environment, owner) for _ in range(3))
        for comm in (first, second):
            await comm.connect()
            await read_until(comm, "$ ")
        await third.connect()
        refused = await closing_message(third)
        await first.disconnect()
        fourth = communicator(environment, owner)
        await fourth.connect()
        await read_until(fourth, "$ ")
        await second.disconnect()
        await fourth.disconnect()
        return refused

    message, code = async_to_sync(scenario)()
    assert (message, code) == ("This environment already has 2 open terminals.", terminal.CLOSE_TOO_MANY)
    assert len(exec_requests(cluster)) == 3


def test_anonymous_is_refused_at_the_handshake(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> bool:
        connected, _ = await communicator(environment).connect()
        return connected

    assert async_to_sync(scenario)() is False
    assert exec_requests(cluster) == []


def test_foreign_origin_is_refused_at_the_handshake(cluster, owner) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> bool:
        connected, _ = await communicator(environment, owner, origin=b"https://evil.example").connect()
        return connected

    assert async_to_sync(scenario)() is False
    assert exec_requests(cluster) == []
    assert not AuditEntry.objects.filter(action__startswith="environment.terminal.").exists()


@pytest.mark.parametrize("make_user", [UserFactory, site_manager], ids=["member", "site-manager"])
def test_other_users_are_refused(cluster, owner, make_user) -> None:
    environment = running_environment(cluster, owner)

    async def scenario() -> tuple[str, int]:
        comm = communicator(environment, make_user())
        await comm.connect()
        return await closing_message(comm)

    message, code = async_to_sync(scenario)()
    assert (message, code) == (
        "Only the environment's owner can open its terminal.",
        terminal.CLOSE_FORBIDDEN,
    )
    assert exec_requests(cluster) == []


def test_non_running_environment_is_refused(cluster, owner) -> None:
    environment = running_environment(cluster, owner)
    Environment.objects.filter(pk=environment.pk).update(state=State.OFF)

    async def scenario() -> tuple[str, int]:
        comm = communicator(environment, owner)
        await comm.connect()
        return await closing_message(comm)

    message, code = async_to_sync(scenario)()
    assert (message, code) == (
        "The environment is off; a terminal needs it running.",
        terminal.CLOSE_NOT_RUNNING,
    )
    assert exec_requests(cluster) == []


def test_site_admin_session_is_audited_and_shown_to_the_owner(cluster, owner) -> None:
    environment = running_environment(cluster, owner)
    admin = site_admin()

    async def scenario() -> None:
        comm = communicator(environment, admin)
        await comm.connect()
        await read_until(comm, "coder@")
        await comm.disconnect()

    async_to_sync(scenario)()
    opened = AuditEntry.objects.get(action="environment.terminal.open")
    assert opened.actor == admin and "by a site admin" in opened.message
    event = EnvironmentEvent.objects.get(environment=environment)
    assert event.message == f"Site admin {admin.username} opened a terminal session in this environment."
    assert AuditEntry.objects.filter(action="environment.terminal.close", actor=admin).exists()
