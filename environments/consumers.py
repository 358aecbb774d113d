"""The terminal WebSocket (``/ws/environments/<pk>/terminal/``): browser <-> Kubernetes exec.

Messages from the browser are JSON text: ``{"type": "input", "data": "..."}`` and
``{"type": "resize", "cols": n, "rows": m}``; anything else is ignored, so the browser can never
choose the container or the command. To the browser: ``{"type": "output", "data": "..."}``,
``{"type": "info", "message": "..."}`` and, last, ``{"type": "closed", "message": "..."}`` before
the socket closes with a 4xxx code.

Authorisation happens in ``connect`` before any exec request: session authentication (anonymous
connections are refused at the handshake), the Origin checked against ALLOWED_HOSTS by the ASGI
stack, owner or site admin, state Running, and a free session slot. While open, a watchdog closes
the session after ``TERMINAL_IDLE_TIMEOUT_SECONDS`` without input or output, after
``TERMINAL_MAX_SESSION_SECONDS`` in all, and as soon as the environment stops being Running or is
deleted (checked every ``WATCH_INTERVAL`` seconds from the database, so it works across processes).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from coderadmin.audit import audit_record
from environments import terminal
from environments.models import Environment, EnvironmentEvent
from environments.states import State
from infrastructure.gateway import GatewayError

WATCH_INTERVAL = 2.0
MAX_DIMENSION = 1000


@database_sync_to_async
def _load(pk: int) -> Environment | None:
    return Environment.objects.select_related("owner", "image").filter(pk=pk).first()


@database_sync_to_async
def _state(pk: int) -> str | None:
    return Environment.objects.filter(pk=pk).values_list("state", flat=True).first()


@database_sync_to_async
def _record_open(user: Any, environment: Environment, target: terminal.ExecTarget, admin: bool) -> None:
    where = f"{target.namespace}/{target.pod} container {target.container}"
    audit_record(
        "environment.terminal.open",
        actor=user,
        target=environment,
        after={"pod": target.pod, "container": target.container, "command": list(target.command)},
        message=f"terminal opened ({where}){' by a site admin' if admin else ''}",
    )
    if admin:
        EnvironmentEvent.objects.create(
            environment=environment,
            type=EnvironmentEvent.Type.WARNING,
            message=f"Site admin {user.get_username()} opened a terminal session in this environment.",
        )


@database_sync_to_async
def _record_close(user: Any, environment: Environment, seconds: float, reason: str) -> None:
    audit_record(
        "environment.terminal.close",
        actor=user,
        target=environment,
        after={"seconds": round(seconds, 1)},
        message=f"terminal closed after {seconds:.0f} s: {reason}",
    )


class TerminalConsumer(AsyncWebsocketConsumer):
    """One browser terminal bridged to one exec session."""

    async def connect(self) -> None:
        self.bridge: terminal.ExecBridge | None = None
        self.slot: terminal.Slot | None = None
        self.watchdog: asyncio.Task | None = None
        self.pump: asyncio.Task | None = None
        self.outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.opened_at = self.last_activity = time.monotonic()
        self.close_reason = "closed by the browser"
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        pk = int(self.scope["url_route"]["kwargs"]["pk"])
        self.environment = await _load(pk)
        await self.accept()
        try:
            admin = terminal.authorise(user, self.environment)
        except terminal.Refused as refused:
            await self._end(str(refused), refused.code)
            return
        self.slot = terminal.Slot(pk)
        if not await database_sync_to_async(self.slot.acquire)():
            self.slot = None
            limit = settings.TERMINAL_MAX_PER_ENVIRONMENT
            await self._end(f"This environment already has {limit} open terminals.", terminal.CLOSE_TOO_MANY)
            return
        target = terminal.exec_target(self.environment)
        loop = asyncio.get_running_loop()

        def emit(kind: str, text: str) -> None:
            loop.call_soon_threadsafe(self.outbox.put_nowait, (kind, text))

        bridge = terminal.ExecBridge(target, emit)
        try:
            await asyncio.to_thread(bridge.open)
        except GatewayError as exc:
            await self._release()
            await self._end(str(exc), terminal.CLOSE_ENDED)
            return
        self.bridge = bridge
        await _record_open(user, self.environment, target, admin)
        await self._send("info", message=f"Connected to {self.environment.name} as {target.user}.")
        self.watchdog = asyncio.create_task(self._watch())
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        """Forward the exec session's output in order; its end closes the terminal."""
        while True:
            kind, text = await self.outbox.get()
            if kind != terminal.OUTPUT:
                await self._end(text, terminal.CLOSE_ENDED)
                return
            self.last_activity = time.monotonic()
            await self._send("output", data=text)

    async def _send(self, kind: str, **fields: str) -> None:
        await self.send(text_data=json.dumps({"type": kind, **fields}))

    async def _end(self, message: str, code: int) -> None:
        """Tell the browser why, close the socket and the exec session."""
        self.close_reason = message
        await self._cleanup()
        await self._send("closed", message=message)
        await self.close(code=code)

    async def _watch(self) -> None:
        idle = settings.TERMINAL_IDLE_TIMEOUT_SECONDS
        longest = settings.TERMINAL_MAX_SESSION_SECONDS
        while True:
            await asyncio.sleep(min(WATCH_INTERVAL, idle, longest))
            now = time.monotonic()
            state = await _state(self.environment.pk)
            if state is None:
                await self._end("The environment was deleted; the terminal closed.", terminal.CLOSE_ENDED)
            elif state != State.RUNNING:
                label = State(state).label.lower()
                await self._end(f"The environment is {label}; the terminal closed.", terminal.CLOSE_ENDED)
            elif now - self.last_activity >= idle:
                await self._end(f"Closed after {idle} s without activity.", terminal.CLOSE_IDLE)
            elif now - self.opened_at >= longest:
                await self._end(
                    f"Closed after the maximum session length of {longest} s.", terminal.CLOSE_ENDED
                )
            else:
                if self.slot is not None:
                    await database_sync_to_async(self.slot.renew)()
                continue
            return

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.bridge is None or text_data is None:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "input" and isinstance(message.get("data"), str):
            self.last_activity = time.monotonic()
            await asyncio.to_thread(self.bridge.write, message["data"])
        elif message.get("type") == "resize":
            cols, rows = message.get("cols"), message.get("rows")
            if (
                isinstance(cols, int)
                and isinstance(rows, int)
                and 0 < cols <= MAX_DIMENSION
                and 0 < rows <= MAX_DIMENSION
            ):
                await asyncio.to_thread(self.bridge.resize, cols, rows)

    async def _release(self) -> None:
        if self.slot is not None:
            slot, self.slot = self.slot, None
            await database_sync_to_async(slot.release)()

    async def _cleanup(self) -> None:
        """Idempotent: stop the watchdog and the exec session, audit the close, free the slot."""
        for name in ("watchdog", "pump"):
            task = getattr(self, name, None)
            setattr(self, name, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        bridge, self.bridge = getattr(self, "bridge", None), None
        if bridge is not None:
            await asyncio.to_thread(bridge.close)
            seconds = time.monotonic() - self.opened_at
            await _record_close(self.scope["user"], self.environment, seconds, self.close_reason)
        if getattr(self, "slot", None) is not None:
            await self._release()

    async def disconnect(self, code: int) -> None:
        await self._cleanup()
