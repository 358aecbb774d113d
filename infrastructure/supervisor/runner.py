"""The one boundary between the supervisor's decisions and the host it runs on.

Every external command (docker, sysbox, mknod, chown) and every read or write of a kernel or
host file goes through a ``Runner``. The entrypoint's logic therefore runs unchanged against
``RecordingRunner``, a fake that records each call in order and answers from a script, so tests
can assert exact command lines without a Docker engine. Standard library only: this module ships
in the supervisor image.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Result:
    """The outcome of a finished command; ``output`` is stdout and stderr merged."""

    args: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Process(Protocol):
    """A long-running daemon started by the supervisor."""

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> int | None: ...


class Runner(Protocol):
    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run a command to completion; ``on_line`` sees each output line as it arrives."""

    def start(self, args: Sequence[str], *, log_path: str) -> Process:
        """Start a daemon whose output goes to ``log_path`` (never to the build log on stdout)."""

    def read_file(self, path: str) -> str | None:
        """The text of a file, or None when it cannot be read."""

    def write_file(self, path: str, content: str) -> None:
        """Write a file (kernel settings, cgroup files, markers); raises OSError on failure."""

    def exists(self, path: str) -> bool: ...

    def free_bytes(self, path: str) -> int:
        """Bytes available to unprivileged writers on the filesystem holding ``path``."""


class _Popen:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    def poll(self) -> int | None:
        return self._popen.poll()

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    def wait(self, timeout: float) -> int | None:
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class SystemRunner:
    """The real host: subprocesses and files."""

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        full_env = {**os.environ, **(env or {})}
        if on_line is None:
            try:
                done = subprocess.run(
                    list(args),
                    env=full_env,
                    timeout=timeout,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                return Result(tuple(args), 124, _text(exc.output) + f"\ntimed out after {timeout}s")
            except OSError as exc:
                return Result(tuple(args), 127, str(exc))
            return Result(tuple(args), done.returncode, done.stdout)
        lines: list[str] = []
        try:
            popen = subprocess.Popen(
                list(args), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as exc:
            return Result(tuple(args), 127, str(exc))
        # The output loop blocks, so the deadline is enforced by a timer that kills the command.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            popen.kill()

        timer = threading.Timer(timeout, expire) if timeout is not None else None
        if timer is not None:
            timer.start()
        with popen:
            assert popen.stdout is not None
            for line in popen.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
            returncode = popen.wait()
        if timer is not None:
            timer.cancel()
            if expired.is_set():
                return Result(tuple(args), 124, "".join(lines) + f"\ntimed out after {timeout}s")
        return Result(tuple(args), returncode, "".join(lines))

    def start(self, args: Sequence[str], *, log_path: str) -> Process:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "ab") as log:
            # A new session keeps the pod's SIGTERM (sent to the supervisor) away from the daemons,
            # which must outlive it until the inner container has stopped.
            popen = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return _Popen(popen)

    def read_file(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def write_file(self, path: str, content: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def free_bytes(self, path: str) -> int:
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


# --- The fake --------------------------------------------------------------------------------


@dataclass
class ScriptedProcess:
    """A daemon in RecordingRunner: alive until told otherwise, or exited from the start."""

    name: str
    runner: RecordingRunner
    returncode: int | None = None
    exits_on_terminate: bool = True

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.runner.events.append(("signal", self.name, signal.SIGTERM.name))
        if self.exits_on_terminate and self.returncode is None:
            self.returncode = 0

    def kill(self) -> None:
        self.runner.events.append(("signal", self.name, signal.SIGKILL.name))
        if self.returncode is None:
            self.returncode = -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        return self.returncode


@dataclass
class _Reply:
    returncode: int = 0
    output: str = ""
    action: Callable[[], None] | None = None


@dataclass
class _DaemonScript:
    returncode: int | None = None
    output: str = ""
    creates: tuple[str, ...] = ()
    exits_on_terminate: bool = True


@dataclass
class RecordingRunner:
    """A fake host for tests: records every call in ``events`` and answers from a script.

    It is a true boundary: no command runs and no Docker engine is needed. ``files`` is the fake
    filesystem that ``read_file``/``write_file``/``exists`` use; ``free`` the answer of
    ``free_bytes``; writes to a path in ``unwritable`` fail. Replies are matched by the longest
    scripted argv prefix and consumed in order; the last one of a prefix repeats.
    """

    files: dict[str, str] = field(default_factory=dict)
    free: int = 100 * 1024**3
    unwritable: set[str] = field(default_factory=set)
    events: list[tuple] = field(default_factory=list)
    processes: dict[str, ScriptedProcess] = field(default_factory=dict)
    _replies: dict[tuple[str, ...], list[_Reply]] = field(default_factory=dict)
    _daemons: dict[str, list[_DaemonScript]] = field(default_factory=dict)

    def reply(
        self,
        prefix: Sequence[str],
        *replies: tuple[int, str],
        action: Callable[[], None] | None = None,
    ) -> None:
        """Script the answers (returncode, output) of commands starting with ``prefix``."""
        self._replies[tuple(prefix)] = [_Reply(code, out, action) for code, out in replies] or [
            _Reply(action=action)
        ]

    def daemon(
        self,
        name: str,
        *,
        returncode: int | None = None,
        output: str = "",
        creates: Sequence[str] = (),
        exits_on_terminate: bool = True,
        replace: bool = False,
    ) -> None:
        """Script the next start of the daemon ``name`` (argv[0]): alive or exited, its log, sockets.

        Starts consume the scripts in order and the last one repeats; ``replace`` drops earlier ones.
        """
        if replace:
            self._daemons.pop(name, None)
        script = _DaemonScript(returncode, output, tuple(creates), exits_on_terminate)
        self._daemons.setdefault(name, []).append(script)

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        argv = tuple(args)
        self.events.append(("run", argv, dict(env or {})))
        reply = self._next_reply(argv)
        if reply.action is not None:
            reply.action()
        if on_line is not None:
            for line in reply.output.splitlines():
                on_line(line)
        return Result(argv, reply.returncode, reply.output)

    def _next_reply(self, argv: tuple[str, ...]) -> _Reply:
        matches = [prefix for prefix in self._replies if argv[: len(prefix)] == prefix]
        if not matches:
            return _Reply()
        queue = self._replies[max(matches, key=len)]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def start(self, args: Sequence[str], *, log_path: str) -> Process:
        argv = tuple(args)
        self.events.append(("start", argv))
        name = argv[0]
        scripts = self._daemons.get(name, [])
        script = scripts.pop(0) if len(scripts) > 1 else (scripts[0] if scripts else _DaemonScript())
        self.files[log_path] = self.files.get(log_path, "") + script.output
        for path in script.creates:
            self.files[path] = ""
        process = ScriptedProcess(
            name=name, runner=self, returncode=script.returncode, exits_on_terminate=script.exits_on_terminate
        )
        self.processes[name] = process
        return process

    def read_file(self, path: str) -> str | None:
        return self.files.get(path)

    def write_file(self, path: str, content: str) -> None:
        if path in self.unwritable:
            raise PermissionError(13, "Permission denied", path)
        self.events.append(("write", path, content))
        self.files[path] = content

    def exists(self, path: str) -> bool:
        return path in self.files

    def free_bytes(self, path: str) -> int:
        return self.free

    def commands(self) -> list[tuple[str, ...]]:
        """The argv of every command run or started, in order."""
        return [event[1] for event in self.events if event[0] in {"run", "start"}]
