"""Helpers of the terminal tests: running environments whose pods exist in a simulated cluster."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.testing import ApplicationCommunicator
from django.test import Client

from environments import manifests
from environments.models import Environment
from environments.states import State
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.simulator import exec as pod_exec
from infrastructure.supervisor import contract
from tests.environments.factories import EnvironmentFactory, ImageFactory

ORIGIN = b"http://testserver"


class WebsocketCommunicator(ApplicationCommunicator):
    """The WebSocket side of an ASGI test client (as ``channels.testing.WebsocketCommunicator``,
    whose package cannot be imported without daphne, which this project does not install)."""

    def __init__(self, application: Any, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        scope = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": headers,
            "subprotocols": [],
        }
        super().__init__(application, scope)

    async def connect(self, timeout: float = 5) -> tuple[bool, Any]:
        """(True, subprotocol) when accepted, (False, close code) when refused at the handshake."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept"
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def receive_from(self, timeout: float = 5) -> str:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return response["text"]

    async def disconnect(self, code: int = 1000, timeout: float = 5) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def running_environment(handle: Any, owner: Any, *, kind: str = "standard", **image: Any) -> Environment:
    """A Running environment and its pod, built by the product's manifests, running in ``handle``."""
    cvm = kind != "standard"
    backend = {"supervisor": CvmBackend.SUPERVISOR, "runtimeclass": CvmBackend.RUNTIMECLASS}.get(kind, "")
    environment = EnvironmentFactory(
        owner=owner,
        image=ImageFactory(username="coder", **image),
        cvm=cvm,
        cvm_backend=backend,
        state=State.RUNNING,
        entrypoint=contract.INIT_ENTRYPOINT if cvm else "",
    )
    settings = InfrastructureSettings.load()
    environment.assign_kubernetes_names(settings)
    environment.save()
    store = handle.store
    handle.cluster.ensure_namespace(environment.namespace)
    pod = manifests.pod(environment, environment.image, settings)
    store.create("pods", pod, environment.namespace)
    stored = store.get_stored("pods", environment.namespace, environment.pod_name).obj
    container = stored["spec"]["containers"][0]["name"]
    stored["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": container,
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }
    store.update_status("pods", stored, namespace=environment.namespace)
    if cvm:
        for output in (contract.entrypoint_line(contract.INIT_ENTRYPOINT), contract.STARTUP_COMPLETE):
            line = contract.format_log_line(contract.LOG_DONE, output)
            store.append_log(environment.namespace, environment.pod_name, container, line)
    return environment


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(environment: Environment, user: Any = None, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    """A WebSocket client of the whole ASGI application (session and Origin checks included)."""
    from coderadmin.asgi import application

    headers = [(b"origin", origin), (b"host", b"testserver")]
    if user is not None:
        headers.append((b"cookie", session_cookie(user)))
    return WebsocketCommunicator(application, f"/ws/environments/{environment.pk}/terminal/", headers)


async def read_until(comm: WebsocketCommunicator, text: str, timeout: float = 10.0) -> str:
    """Output until ``text`` appears (fails on a ``closed`` message or the timeout)."""
    seen = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in seen:
        message = json.loads(await comm.receive_from(timeout=max(0.1, deadline - loop.time())))
        assert message["type"] != "closed", f"closed: {message['message']} after {seen!r}"
        seen += message.get("data", "")
    return seen


async def closing_message(comm: WebsocketCommunicator, timeout: float = 10.0) -> tuple[str, int]:
    """Skip output until the ``closed`` message; return it and the close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = json.loads(await comm.receive_from(timeout=max(0.1, deadline - loop.time())))
        if message["type"] == "closed":
            break
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return message["message"], output["code"]


def exec_requests(handle: Any) -> list[pod_exec.ExecRequest]:
    return pod_exec.requests(handle.cluster)
