"""Terminal sessions into environments: what to exec, who may, and the bridge to the exec API.

The container and the command come only from the environment (``exec_target``), never from the
browser, which sends nothing but keystrokes and window sizes:

- CVM, supervising-container backend: exec into the supervising container with
  ``docker exec -it -e TERM=xterm-256color workspace su - <user>``. The supervising container is
  privileged; the user only ever reaches the inner container, as the image's user, in a login shell.
- CVM RuntimeClass backend, and standard environments whose container runs as root:
  ``su - <user>`` in the environment container (a login shell as the image's user).
- Standard environments whose image declares a UID: the container already runs as that user and
  cannot switch users (no privilege escalation), so ``/bin/sh -l``.

``ExecBridge`` runs the official client's ``kubernetes.stream`` WebSocket in a thread. It uses its
own ``ApiClient`` (same configuration as the gateway's) because ``stream()`` swaps the client's
request method while it connects, which must not happen to the shared client other threads use.

Concurrent sessions per environment are counted in the Django cache (shared by every process) as
slots ``terminal:slot:<pk>:<n>`` taken with ``cache.add`` and renewed while the session lives, so a
process that dies frees its slots when they expire.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import RESIZE_CHANNEL, STDIN_CHANNEL
from websocket import WebSocketException

from coderadmin.roles import is_site_admin
from environments.models import Environment
from environments.states import State
from infrastructure import gateway
from infrastructure.models import CvmBackend
from infrastructure.supervisor import contract

log = logging.getLogger(__name__)

SLOT_TTL_SECONDS = 120  # a slot outlives its last renewal by this long
TERM = "xterm-256color"
OUTPUT, CLOSED = "output", "closed"


@dataclass(frozen=True)
class ExecTarget:
    """Where and what a terminal session execs."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    user: str

    @property
    def kubectl(self) -> str:
        """The command an operator would type for the same shell."""
        return shlex.join(
            [
                "kubectl",
                "exec",
                "-it",
                "-n",
                self.namespace,
                self.pod,
                "-c",
                self.container,
                "--",
                *self.command,
            ]
        )


def login_command(username: str, *, runs_as_user: bool) -> tuple[str, ...]:
    """A login shell as ``username`` in a container running as root, or as itself when it already is."""
    if runs_as_user:
        return ("/bin/sh", "-l")
    return ("su", "-", username)


def exec_target(environment: Environment) -> ExecTarget:
    """The fixed container and command of ``environment``'s terminal (see the module docstring)."""
    username = environment.image.username
    if environment.cvm and environment.cvm_backend == CvmBackend.SUPERVISOR:
        inner = login_command(username, runs_as_user=False)
        command = ("docker", "exec", "-it", "-e", f"TERM={TERM}", contract.INNER_CONTAINER_NAME, *inner)
        container = contract.SUPERVISOR_CONTAINER_NAME
    else:
        runs_as_user = not environment.cvm and bool(environment.image.run_as_uid)
        command = login_command(username, runs_as_user=runs_as_user)
        container = contract.ENVIRONMENT_CONTAINER_NAME
    return ExecTarget(environment.namespace, environment.pod_name, container, command, username)


def what_to_expect(environment: Environment) -> list[str]:
    """Plain sentences for the Connect panel about the shell the user gets."""
    user = environment.image.username
    lines = [f"A login shell as {user} in /home/{user}, which is kept on the environment's disk."]
    if environment.cvm:
        lines.append(
            "Docker works inside: docker ps, docker run and docker build use the environment's own daemon."
        )
        if environment.entrypoint == contract.INIT_ENTRYPOINT:
            lines.append("The image has /sbin/init, so systemd is PID 1 and systemctl manages services.")
        elif environment.entrypoint == contract.KEEPALIVE_ENTRYPOINT:
            lines.append(
                "The image has no /sbin/init: PID 1 is a keep-alive process and there is no systemd."
            )
    else:
        lines.append("A standard container: no Docker daemon and no systemd inside.")
    return lines


# --- Who may open a terminal --------------------------------------------------------------------


class Refused(Exception):
    """A terminal may not be opened; ``str()`` is shown to the user, ``code`` closes the socket."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


CLOSE_FORBIDDEN = 4403
CLOSE_NOT_RUNNING = 4409
CLOSE_TOO_MANY = 4429
CLOSE_IDLE = 4408
CLOSE_ENDED = 4000


def authorise(user: Any, environment: Environment | None) -> bool:
    """True for the owner, True for a site admin on someone else's environment (to be made visible);
    ``Refused`` otherwise."""
    if environment is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Refused("No such environment.", CLOSE_FORBIDDEN)
    if environment.owner_id == user.pk:
        admin_session = False
    elif is_site_admin(user):
        admin_session = True
    else:
        raise Refused("Only the environment's owner can open its terminal.", CLOSE_FORBIDDEN)
    if environment.state != State.RUNNING or not environment.pod_name:
        raise Refused(
            f"The environment is {environment.get_state_display().lower()}; a terminal needs it running.",
            CLOSE_NOT_RUNNING,
        )
    return admin_session


# --- Concurrent sessions per environment --------------------------------------------------------


class Slot:
    """One of ``TERMINAL_MAX_PER_ENVIRONMENT`` session slots of an environment, in the cache."""

    def __init__(self, environment_pk: int) -> None:
        self.environment_pk = environment_pk
        self.token = uuid.uuid4().hex
        self.key: str | None = None

    def acquire(self) -> bool:
        for index in range(settings.TERMINAL_MAX_PER_ENVIRONMENT):
            key = f"terminal:slot:{self.environment_pk}:{index}"
            if cache.add(key, self.token, timeout=SLOT_TTL_SECONDS):
                self.key = key
                return True
        return False

    def renew(self) -> None:
        if self.key is not None and cache.get(self.key) == self.token:
            cache.touch(self.key, SLOT_TTL_SECONDS)

    def release(self) -> None:
        if self.key is not None and cache.get(self.key) == self.token:
            cache.delete(self.key)
        self.key = None


# --- The bridge to the exec API ----------------------------------------------------------------


def _exec_client() -> client.ApiClient:
    return client.ApiClient(gateway.api_client().configuration)


def _exit_message(ws: Any) -> str:
    """How the command ended, from the Status on the error channel."""
    raw = ws.read_channel(3)
    if not raw:
        return "The connection to the environment was lost."
    try:
        status = json.loads(raw)
    except ValueError:
        return raw
    if status.get("status") == "Success":
        return "The shell exited."
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode" and causes:
        return f"The shell exited with code {causes[0].get('message')}."
    return status.get("message") or "The shell ended."


class ExecBridge:
    """A TTY exec session; ``emit(kind, text)`` is called from its thread with output and the end."""

    def __init__(self, target: ExecTarget, emit: Callable[[str, str], None]) -> None:
        self.target = target
        self.emit = emit
        self._ws: Any = None
        self._api: client.ApiClient | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, cols: int = 80, rows: int = 24) -> None:
        """Connect (blocking); ``gateway.GatewayError`` when the cluster refuses."""
        self._api = _exec_client()
        api = client.CoreV1Api(self._api)
        try:
            self._ws = stream(
                api.connect_get_namespaced_pod_exec,
                self.target.pod,
                self.target.namespace,
                container=self.target.container,
                command=list(self.target.command),
                stdin=True,
                stdout=True,
                stderr=False,
                tty=True,
                _preload_content=False,
            )
        except ApiException as exc:
            self._api.close()
            raise gateway.Unavailable(f"The cluster refused the terminal: {exc.reason or exc}") from exc
        self.resize(cols, rows)
        self._thread = threading.Thread(target=self._pump, name="terminal-exec", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        ws = self._ws
        try:
            while ws.is_open() and not self._closing.is_set():
                ws.update(timeout=0.2)
                if ws.peek_stdout():
                    self.emit(OUTPUT, ws.read_stdout(timeout=0))
            message = "" if self._closing.is_set() else _exit_message(ws)
        except Exception:
            log.exception("terminal exec stream into %s/%s failed", self.target.namespace, self.target.pod)
            message = "The connection to the environment was lost."
        finally:
            ws.close()
            if self._api is not None:
                self._api.close()
        if message:
            self.emit(CLOSED, message)

    def _write(self, channel: int, data: str) -> None:
        """Send to the session; once the stream has ended, what the browser still sends is dropped."""
        if self._ws is None or not self._ws.is_open():
            return
        try:
            self._ws.write_channel(channel, data)
        except (OSError, WebSocketException):
            log.debug("terminal input after the exec stream ended", exc_info=True)

    def write(self, data: str) -> None:
        self._write(STDIN_CHANNEL, data)

    def resize(self, cols: int, rows: int) -> None:
        self._write(RESIZE_CHANNEL, json.dumps({"Width": cols, "Height": rows}))

    def close(self) -> None:
        """Stop the session (the shell in the container gets a hang-up when the stream closes)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
