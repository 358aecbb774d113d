"""``pods/exec`` over WebSocket with the real channel protocol, into the simulated shell.

The request is checked as the real API server and kubelet check it (pod, container, running
container, a command, at least one stream) and answered with their status codes and wording before
any upgrade. The upgrade negotiates ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``. Every binary
message starts with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (the ``Status`` JSON
sent once the command ends), 4 resize (``{"Width": w, "Height": h}``), and in v5 255 close (the
client closes one of its streams, e.g. ``[255, 0]`` for stdin). A TTY merges stderr into stdout.

What the shell answers comes from the pod (``shell.ShellContext``): in a supervising container,
``docker exec ... workspace <command>`` enters the inner container once the supervisor logged
``startup complete``, with the inner image, hostname and the entrypoint it logged as PID 1. The
session ends with exit code 137 when the container stops or the pod goes.

``requests(cluster)`` lists the exec requests a cluster received (tests assert on them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import struct
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infrastructure.supervisor import contract

from . import errors, shell, supervisor_sim
from .profiles import ImageCatalog

if TYPE_CHECKING:
    from .cluster import SimulatedCluster
    from .server import Handler

V4_PROTOCOL = "v4.channel.k8s.io"
V5_PROTOCOL = "v5.channel.k8s.io"
PROTOCOLS = (V5_PROTOCOL, V4_PROTOCOL)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
EXIT_KILLED = 137
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_LIVENESS_INTERVAL = 0.2
_SHELLS = frozenset({"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash", "ash", "/bin/ash"})
SUPERVISOR_PID1 = "tini -- python3 -m infrastructure.supervisor.entrypoint"


@dataclass(frozen=True)
class ExecRequest:
    """One exec request as the server received it (after authentication)."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool
    tty: bool


_requests: weakref.WeakKeyDictionary[Any, list[ExecRequest]] = weakref.WeakKeyDictionary()
_requests_lock = threading.Lock()


def requests(cluster: SimulatedCluster) -> list[ExecRequest]:
    """The exec requests ``cluster`` received so far, oldest first."""
    with _requests_lock:
        return list(_requests.get(cluster, []))


def _record(cluster: SimulatedCluster, request: ExecRequest) -> None:
    with _requests_lock:
        _requests.setdefault(cluster, []).append(request)


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, [""])[0].lower() in ("1", "true")


# --- What the command runs in ---------------------------------------------------------------


def _env_values(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or [] if isinstance(e.get("value"), str)}


def _home_user(container: dict[str, Any]) -> str:
    """The environment's user, from the home directory mounted at /home/<user>."""
    for mount in container.get("volumeMounts") or []:
        path = mount.get("mountPath", "")
        if path.startswith("/home/") and path.count("/") == 2:
            return path.rsplit("/", 1)[-1]
    return "root"


def _logged_entrypoint(lines: list[tuple[str, str]]) -> str | None:
    for _, text in lines:
        parsed = contract.parse_log_line(text)
        if parsed is not None and (entrypoint := contract.parse_entrypoint(parsed.output)):
            return entrypoint
    return None


def _started(lines: list[tuple[str, str]]) -> bool:
    return any(
        (parsed := contract.parse_log_line(text)) is not None and parsed.output == contract.STARTUP_COMPLETE
        for _, text in lines
    )


def _pid1(entrypoint: str | None, fallback: list[str]) -> str:
    if entrypoint == contract.INIT_ENTRYPOINT:
        return contract.INIT_ENTRYPOINT
    return _argv_line(fallback)


def _argv_line(argv: list[str] | tuple[str, ...]) -> str:
    """PID 1 as ``ps`` shows it: the arguments separated by spaces, without quoting."""
    return " ".join(argv)


@dataclass
class _Target:
    """The container an exec runs in, and whether it is a supervisor or a CVM."""

    pod: dict[str, Any]
    container: dict[str, Any]
    logs: list[tuple[str, str]]

    @property
    def hostname(self) -> str:
        spec = self.pod.get("spec") or {}
        return spec.get("hostname") or self.pod["metadata"]["name"]

    @property
    def image(self) -> str:
        return self.container.get("image", "")

    def is_supervisor(self) -> bool:
        return supervisor_sim.is_supervisor(self.container, ImageCatalog())

    def root_context(self) -> shell.ShellContext:
        """A shell as the container's own user (root unless ``runAsUser`` says otherwise)."""
        if self.is_supervisor():
            return shell.ShellContext(
                user="root",
                hostname=self.hostname,
                image=self.image,
                pid1=SUPERVISOR_PID1,
                cwd="/",
                docker=True,
                docker_containers=self._inner_listing(),
            )
        cvm = supervisor_sim.is_wrapper(self.container)
        if cvm:
            pid1 = _pid1(_logged_entrypoint(self.logs), contract.runtimeclass_wrapper_command())
        else:
            pid1 = _argv_line(
                list(self.container.get("command") or []) + list(self.container.get("args") or [])
            )
        security = self.container.get("securityContext") or {}
        pod_security = (self.pod.get("spec") or {}).get("securityContext") or {}
        as_user = security.get("runAsUser", pod_security.get("runAsUser"))
        user = _home_user(self.container) if as_user else "root"
        return shell.ShellContext(user=user, hostname=self.hostname, image=self.image, pid1=pid1, docker=cvm)

    def _inner_listing(self) -> list[tuple[str, str, str]]:
        if not _started(self.logs):
            return []
        image = _env_values(self.container).get(contract.ENV_INNER_IMAGE, "")
        return [("5c1d0e9a7b3f", image, contract.INNER_CONTAINER_NAME)]

    def inner_context(self, user: str, workdir: str) -> shell.ShellContext:
        env = _env_values(self.container)
        command = env.get(contract.ENV_INNER_COMMAND)
        fallback = json.loads(command) if command else list(contract.KEEPALIVE_COMMAND)
        return shell.ShellContext(
            user=user,
            hostname=env.get(contract.ENV_INNER_HOSTNAME, self.hostname),
            image=env.get(contract.ENV_INNER_IMAGE, ""),
            pid1=_pid1(_logged_entrypoint(self.logs), fallback),
            cwd=workdir,
            docker=True,
        )


def _parse_docker_exec(args: list[str]) -> tuple[dict[str, str], str, list[str]] | str:
    """``docker exec`` options, container and command; a string is docker's usage error."""
    options: dict[str, str] = {}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        option = args[index]
        if option in ("-u", "--user", "-w", "--workdir", "-e", "--env"):
            if index + 1 >= len(args):
                return f'flag needs an argument: "{option}" in {option}'
            options[option.lstrip("-")[0]] = args[index + 1]
            index += 2
            continue
        for letter in option.lstrip("-"):
            options[letter] = "true"
        index += 1
    if len(args) - index < 2:
        return '"docker exec" requires at least 2 arguments.'
    return options, args[index], args[index + 1 :]


class _Launch:
    """The shell, and an error to print before it when the command cannot start as asked."""

    def __init__(self, shell_: shell.SimulatedShell | None, argv: list[str], message: str = "") -> None:
        self.shell = shell_
        self.argv = argv  # a single command to run, or [] for an interactive shell
        self.message = message
        self.status = 0 if shell_ else 1


def _launch(target: _Target, command: list[str], tty: bool) -> _Launch:
    context = target.root_context()
    argv = list(command)
    if target.is_supervisor() and argv[:2] == ["docker", "exec"]:
        parsed = _parse_docker_exec(argv[2:])
        if isinstance(parsed, str):
            return _Launch(None, [], f"{parsed}\n")
        options, name, argv = parsed
        if name != contract.INNER_CONTAINER_NAME or not _started(target.logs):
            return _Launch(None, [], f"Error response from daemon: No such container: {name}\n")
        if "t" in options and not tty:
            return _Launch(None, [], "the input device is not a TTY\n")
        user = options.get("u", "root")
        home = "/root" if user == "root" else contract.inner_home_target(user)
        context = target.inner_context(user, options.get("w", home))
    return _enter(context, argv, tty)


def _enter(context: shell.ShellContext, argv: list[str], tty: bool) -> _Launch:
    """``su - user``, a (login) shell, ``sh -c line``, or one command; interactive on a TTY or ``-i``."""
    if argv[:1] in (["su"], ["runuser"]):
        rest = [a for a in argv[1:] if a not in ("-", "-l", "--login")]
        user = rest[0] if rest else "root"
        if context.user != "root" and user != context.user:
            return _Launch(None, [], "su: Authentication failure\n")
        context = shell.ShellContext(
            user=user,
            hostname=context.hostname,
            image=context.image,
            pid1=context.pid1,
            docker=context.docker,
            docker_containers=context.docker_containers,
        )
        return _Launch(shell.SimulatedShell(context, tty=tty, interactive=tty), [])
    if argv[:1] and argv[0] in _SHELLS:
        flags = [a for a in argv[1:] if a.startswith("-")]
        if any("c" in flag for flag in flags):
            line = argv[1 + len(flags) :][:1]
            sim = shell.SimulatedShell(context, tty=tty, interactive=False)
            return _Launch(sim, ["__line__", *line])
        interactive = tty or any("i" in flag for flag in flags)
        return _Launch(shell.SimulatedShell(context, tty=tty, interactive=interactive), [])
    return _Launch(shell.SimulatedShell(context, tty=tty, interactive=False), argv)


# --- Status objects on the error channel ------------------------------------------------------


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(command: list[str], code: int) -> dict[str, Any]:
    """The kubelet's Status for a command that exited non-zero."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


# --- WebSocket framing (RFC 6455, server side) -----------------------------------------------


class _Socket:
    """Frames over the handler's (TLS) stream; writes are serialised by a lock."""

    def __init__(self, handler: Handler) -> None:
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self._lock = threading.Lock()
        self.closed = False

    def send(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._lock:
            if self.closed:
                return
            try:
                self.wfile.write(header + payload)
                self.wfile.flush()
            except OSError:
                self.closed = True

    def channel(self, channel: int, data: bytes) -> None:
        self.send(_OP_BINARY, bytes([channel]) + data)

    def close(self, code: int = 1000) -> None:
        self.send(_OP_CLOSE, struct.pack("!H", code))
        with self._lock:
            self.closed = True

    def _read(self, count: int) -> bytes:
        data = self.rfile.read(count)
        if len(data) < count:
            raise EOFError
        return data

    def receive(self) -> tuple[int, bytes]:
        """The next complete message (opcode, payload); control frames come back as they arrive."""
        message_opcode, parts = None, []
        while True:
            first, second = self._read(2)
            opcode, fin = first & 0x0F, bool(first & 0x80)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode >= _OP_CLOSE:
                return opcode, payload
            if opcode != _OP_CONTINUATION:
                message_opcode = opcode
            parts.append(payload)
            if fin:
                return message_opcode or _OP_BINARY, b"".join(parts)


# --- The request -------------------------------------------------------------------------------


def serve(handler: Handler, namespace: str, name: str, query: dict[str, list[str]]) -> None:
    """Check the request, upgrade, and run the session until the command ends or a side goes."""
    cluster = handler.server.cluster
    store = cluster.store
    command = query.get("command", [])
    stdin, tty = _flag(query, "stdin"), _flag(query, "tty")
    container_name = query.get("container", [""])[0]
    _record(cluster, ExecRequest(namespace, name, container_name, tuple(command), stdin, tty))
    pod = store.get_stored("pods", namespace, name).obj
    containers = list((pod.get("spec") or {}).get("containers") or [])
    names = [c.get("name") for c in containers]
    if not container_name:
        if len(names) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
            )
        container_name = names[0]
    if container_name not in names:
        raise errors.bad_request(f"container {container_name} is not valid for pod {name}")
    phase = (pod.get("status") or {}).get("phase", "")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    if not _running(pod, container_name):
        raise errors.bad_request(f'unable to upgrade connection: container not found ("{container_name}")')
    if not command:
        raise errors.bad_request("you must specify at least 1 command")
    if not (stdin or _flag(query, "stdout") or _flag(query, "stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    protocol = _negotiate(handler)
    container = containers[names.index(container_name)]
    target = _Target(pod, container, store.log_lines(namespace, name, container_name))
    launch = _launch(target, command, tty)
    _upgrade(handler, protocol)
    handler.close_connection = True
    socket_ = _Socket(handler)
    session = _Session(socket_, protocol, launch, command, tty)
    session.run(lambda: _alive(store, namespace, name, pod["metadata"]["uid"], container_name))


def _running(pod: dict[str, Any], container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return "running" in (status.get("state") or {})
    return False


def _alive(store: Any, namespace: str, name: str, uid: str, container: str) -> bool:
    try:
        pod = store.get_stored("pods", namespace, name).obj
    except errors.APIError:
        return False
    return pod["metadata"]["uid"] == uid and _running(pod, container)


def _negotiate(handler: Handler) -> str:
    if "websocket" not in (handler.headers.get("Upgrade") or "").lower():
        raise errors.bad_request("Upgrade request required")
    offered = [p.strip() for p in (handler.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    for protocol in offered:
        if protocol in PROTOCOLS:
            return protocol
    raise errors.bad_request(
        f"unable to upgrade connection: none of the requested subprotocols {offered} is supported; "
        f"supported: {', '.join(PROTOCOLS)}"
    )


def _upgrade(handler: Handler, protocol: str) -> None:
    key = handler.headers.get("Sec-WebSocket-Key", "")
    accept = base64.b64encode(hashlib.sha1((key + _WEBSOCKET_GUID).encode()).digest()).decode()  # noqa: S324
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()


class _Session:
    """The reader thread puts messages on a queue; this thread runs the shell and writes."""

    def __init__(
        self, socket_: _Socket, protocol: str, launch: _Launch, command: list[str], tty: bool
    ) -> None:
        self.socket = socket_
        self.protocol = protocol
        self.launch = launch
        self.command = command
        self.tty = tty
        self.inbox: queue.Queue[tuple[int, bytes] | None] = queue.Queue()

    def _reader(self) -> None:
        try:
            while True:
                opcode, payload = self.socket.receive()
                if opcode == _OP_PING:
                    self.socket.send(_OP_PONG, payload)
                    continue
                if opcode == _OP_PONG:
                    continue
                self.inbox.put((opcode, payload))
                if opcode == _OP_CLOSE:
                    return
        except (EOFError, OSError, ValueError):
            self.inbox.put(None)

    def _emit(self, output: shell.Output) -> None:
        for stream, text in output:
            if text:
                self.socket.channel(stream, text.encode())

    def run(self, alive: Any) -> None:
        threading.Thread(target=self._reader, name="simulated-exec-reader", daemon=True).start()
        sim = self.launch.shell
        if sim is None:
            self.socket.channel(STDOUT if self.tty else STDERR, self.launch.message.encode())
            self._finish(self.launch.status)
            return
        if self.launch.argv[:1] == ["__line__"]:
            self._emit(sim.run_line(" ".join(self.launch.argv[1:])))
            sim.exit_code = sim.exit_code if sim.exit_code is not None else sim.last_status
        elif self.launch.argv:
            self._emit(sim.run(self.launch.argv))
            sim.exit_code = sim.exit_code if sim.exit_code is not None else sim.last_status
        else:
            self._emit(sim.start())
        while sim.exit_code is None:
            try:
                message = self.inbox.get(timeout=_LIVENESS_INTERVAL)
            except queue.Empty:
                if not alive():
                    self._finish(EXIT_KILLED)
                    return
                continue
            if message is None:
                return
            opcode, payload = message
            if opcode == _OP_CLOSE:
                self.socket.close()
                return
            if not payload:
                continue
            self._message(sim, payload[0], payload[1:])
        self._finish(sim.exit_code)

    def _message(self, sim: shell.SimulatedShell, channel: int, data: bytes) -> None:
        if channel == STDIN:
            self._emit(sim.feed(data.decode("utf-8", "replace")))
        elif channel == RESIZE:
            try:
                size = json.loads(data)
                sim.resize(int(size["Width"]), int(size["Height"]))
            except (ValueError, KeyError, TypeError):
                return
        elif channel == CLOSE and self.protocol == V5_PROTOCOL and data[:1] == bytes([STDIN]):
            self._emit(sim.end_of_input())

    def _finish(self, code: int) -> None:
        status = success_status() if code == 0 else exit_status(self.command, code)
        self.socket.channel(ERROR, json.dumps(status, separators=(",", ":")).encode())
        self.socket.close()
