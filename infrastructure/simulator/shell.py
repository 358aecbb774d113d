"""The simulated shell behind ``pods/exec``: a few commands answered consistently with the pod.

It is not a shell interpreter. It exists so that the product's terminal can be demoed and tested
end to end: it says it is simulated, echoes typed characters on a TTY, edits the line (backspace,
Ctrl-C, Ctrl-D) and answers ``whoami``, ``id``, ``pwd``, ``cd``, ``hostname``, ``cat
/etc/os-release``, ``ls``, ``ps``, ``docker ps``/``docker run hello-world`` (where Docker exists),
``stty size``, ``echo``, ``help`` and ``exit`` from a ``ShellContext`` that ``exec.py`` builds from
the pod, the container and what the simulated supervisor logged.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

STDOUT = 1
STDERR = 2
EXIT_NOT_FOUND = 127
BANNER = "Simulated shell (coderadmin simulated cluster): only a few commands work; type help.\n"
HELLO_WORLD = (
    "Unable to find image 'hello-world:latest' locally\n"
    "latest: Pulling from library/hello-world\n"
    "Status: Downloaded newer image for hello-world:latest\n\n"
    "Hello from Docker!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "(Simulated: no container really ran.)\n"
)
_DOCKER_HEADER = "CONTAINER ID   IMAGE         COMMAND    CREATED          STATUS                      NAMES"
_HELP = (
    "simulated commands: whoami, id, pwd, cd, hostname, cat /etc/os-release, ls, ps, "
    "docker ps, docker run hello-world, stty size, echo, help, exit\n"
)

Output = list[tuple[int, str]]


@dataclass
class ShellContext:
    """Who and where the shell runs; everything it answers comes from here."""

    user: str
    hostname: str
    image: str
    pid1: str  # the command line of PID 1 in the container the shell runs in
    cwd: str = ""
    docker: bool = False  # a Docker daemon is reachable (inside a CVM)
    docker_containers: list[tuple[str, str, str]] = field(default_factory=list)  # (id, image, name)

    def __post_init__(self) -> None:
        if not self.cwd:
            self.cwd = self.home

    @property
    def home(self) -> str:
        return "/root" if self.user == "root" else f"/home/{self.user}"


class SimulatedShell:
    """Feed it stdin bytes, get (stream, text) chunks back; ``exit_code`` is set once it exits."""

    def __init__(self, context: ShellContext, *, tty: bool, interactive: bool) -> None:
        self.context = context
        self.tty = tty
        self.interactive = interactive
        self.exit_code: int | None = None
        self.last_status = 0
        self.width, self.height = 80, 24
        self._line = ""
        self._escape = ""
        self._ran_hello_world = False

    # ------------------------------------------------------------------ output helpers

    def _text(self, text: str) -> str:
        return text.replace("\n", "\r\n") if self.tty else text

    def _out(self, stream: int, text: str) -> tuple[int, str]:
        return (STDOUT if self.tty else stream), self._text(text)

    def prompt(self) -> str:
        cwd = self.context.cwd
        if cwd == self.context.home or cwd.startswith(self.context.home + "/"):
            cwd = "~" + cwd[len(self.context.home) :]
        sign = "#" if self.context.user == "root" else "$"
        return f"{self.context.user}@{self.context.hostname}:{cwd}{sign} "

    def start(self) -> Output:
        """What an interactive shell prints before the first input."""
        if not self.interactive:
            return []
        return [self._out(STDOUT, BANNER), (STDOUT, self.prompt())]

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = max(1, width), max(1, height)

    # ------------------------------------------------------------------ input

    def feed(self, data: str) -> Output:
        """Consume stdin; on a TTY with line editing and echo, else line by line."""
        output: Output = []
        for char in data:
            if self.exit_code is not None:
                break
            if self._escape or char == "\x1b":
                self._escape += char
                if len(self._escape) > 1 and (self._escape[-1].isalpha() or self._escape[-1] == "~"):
                    self._escape = ""
                continue
            if char in "\r\n":
                if self.tty:
                    output.append((STDOUT, "\r\n"))
                line, self._line = self._line, ""
                output += self.run_line(line)
                if self.exit_code is None and self.interactive:
                    output.append((STDOUT, self.prompt()))
            elif self.tty and char in "\x7f\b":
                if self._line:
                    self._line = self._line[:-1]
                    output.append((STDOUT, "\b \b"))
            elif self.tty and char == "\x03":
                self._line = ""
                self.last_status = 130
                output.append((STDOUT, "^C\r\n" + self.prompt()))
            elif self.tty and char == "\x04":
                if not self._line:
                    output.append((STDOUT, "logout\r\n"))
                    self.exit_code = self.last_status
            elif char.isprintable() or char == "\t":
                self._line += char
                if self.tty:
                    output.append((STDOUT, char))
        return output

    def end_of_input(self) -> Output:
        """stdin closed: a pending line runs, then the shell exits like bash at end of input."""
        output = self.run_line(self._line) if self._line.strip() else []
        self._line = ""
        if self.exit_code is None:
            self.exit_code = self.last_status
        return output

    # ------------------------------------------------------------------ commands

    def run_line(self, line: str) -> Output:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            self.last_status = 2
            return [self._out(STDERR, f"sh: syntax error: {exc}\n")]
        if not argv:
            return []
        return self.run(argv)

    def run(self, argv: list[str]) -> Output:
        """Run one command; sets ``last_status`` (and ``exit_code`` for ``exit``)."""
        name, args = argv[0], argv[1:]
        handler = getattr(self, f"_cmd_{name.rsplit('/', 1)[-1].replace('-', '_')}", None)
        if handler is None:
            self.last_status = EXIT_NOT_FOUND
            return [self._out(STDERR, f"{name}: command not found (simulated shell: type help)\n")]
        status, output = handler(args)
        self.last_status = status
        return output

    def _ok(self, text: str) -> tuple[int, Output]:
        return 0, [self._out(STDOUT, text)] if text else []

    def _fail(self, status: int, text: str) -> tuple[int, Output]:
        return status, [self._out(STDERR, text)]

    def _cmd_whoami(self, args: list[str]) -> tuple[int, Output]:
        return self._ok(f"{self.context.user}\n")

    def _cmd_id(self, args: list[str]) -> tuple[int, Output]:
        uid = 0 if self.context.user == "root" else 1000
        user = self.context.user
        return self._ok(f"uid={uid}({user}) gid={uid}({user}) groups={uid}({user})\n")

    def _cmd_pwd(self, args: list[str]) -> tuple[int, Output]:
        return self._ok(f"{self.context.cwd}\n")

    def _path(self, value: str) -> str:
        if value == "~" or value.startswith("~/"):
            value = self.context.home + value[1:]
        return posixpath.normpath(posixpath.join(self.context.cwd, value))

    def _cmd_cd(self, args: list[str]) -> tuple[int, Output]:
        self.context.cwd = self._path(args[0]) if args else self.context.home
        return 0, []

    def _cmd_hostname(self, args: list[str]) -> tuple[int, Output]:
        return self._ok(f"{self.context.hostname}\n")

    def _cmd_echo(self, args: list[str]) -> tuple[int, Output]:
        return self._ok(" ".join(args) + "\n")

    def _cmd_help(self, args: list[str]) -> tuple[int, Output]:
        return self._ok(_HELP)

    def _cmd_true(self, args: list[str]) -> tuple[int, Output]:
        return 0, []

    def _cmd_false(self, args: list[str]) -> tuple[int, Output]:
        return 1, []

    def _cmd_clear(self, args: list[str]) -> tuple[int, Output]:
        return 0, [(STDOUT, "\x1b[H\x1b[2J")] if self.tty else []

    def _cmd_exit(self, args: list[str]) -> tuple[int, Output]:
        code = self.last_status
        if args:
            try:
                code = int(args[0]) & 0xFF
            except ValueError:
                code = 2
        self.exit_code = code
        return code, [(STDOUT, self._text("logout\n"))] if self.interactive else []

    _cmd_logout = _cmd_exit

    def _cmd_stty(self, args: list[str]) -> tuple[int, Output]:
        if args != ["size"]:
            return self._fail(1, "stty: simulated shell: only 'stty size' works\n")
        if not self.tty:
            return self._fail(1, "stty: 'standard input': Inappropriate ioctl for device\n")
        return self._ok(f"{self.height} {self.width}\n")

    def _cmd_cat(self, args: list[str]) -> tuple[int, Output]:
        output: Output = []
        status = 0
        for arg in args:
            if self._path(arg) == "/etc/os-release":
                output.append(self._out(STDOUT, self._os_release()))
            else:
                status = 1
                output.append(self._out(STDERR, f"cat: {arg}: No such file or directory\n"))
        return status, output

    def _os_release(self) -> str:
        return (
            'NAME="Simulated Linux"\n'
            'PRETTY_NAME="Simulated Linux (image ' + self.context.image + ')"\n'
            "ID=simulated\n"
            'VERSION_ID="1"\n'
        )

    def _cmd_ls(self, args: list[str]) -> tuple[int, Output]:
        paths = [a for a in args if not a.startswith("-")] or [self.context.cwd]
        output: Output = []
        status = 0
        for path in paths:
            full = self._path(path)
            if full == "/":
                output.append(
                    self._out(STDOUT, "bin  dev  etc  home  lib  proc  root  sbin  tmp  usr  var\n")
                )
            elif full == "/home":
                output.append(
                    self._out(STDOUT, "" if self.context.user == "root" else f"{self.context.user}\n")
                )
            elif full != self.context.home:
                status = 2
                output.append(self._out(STDERR, f"ls: cannot access '{path}': No such file or directory\n"))
        return status, output

    def _cmd_ps(self, args: list[str]) -> tuple[int, Output]:
        header = "    PID TTY      STAT   TIME COMMAND\n"
        first = f"      1 ?        Ss     0:00 {self.context.pid1}\n"
        if args and args not in (["1"], ["-p", "1"], ["-p1"], ["aux"], ["-ef"]):
            return 1, [self._out(STDOUT, header)]
        if args in (["1"], ["-p", "1"], ["-p1"]):
            return self._ok(header + first)
        terminal = "pts/0" if self.tty else "?"
        return self._ok(
            header
            + first
            + f"     17 {terminal:<8} Ss     0:00 -sh\n"
            + f"     23 {terminal:<8} R+     0:00 ps {' '.join(args)}\n".replace(" \n", "\n")
        )

    def _cmd_docker(self, args: list[str]) -> tuple[int, Output]:
        if not self.context.docker:
            return self._fail(EXIT_NOT_FOUND, "docker: command not found (no Docker outside a CVM)\n")
        if args[:1] == ["ps"]:
            rows = list(self.context.docker_containers)
            if "-a" in args and self._ran_hello_world:
                rows.append(("0f3e1d2c4b5a", "hello-world", "simulated_hello"))
            lines = [_DOCKER_HEADER]
            for container_id, image, name in rows:
                status = "Exited (0) 1 second ago" if image == "hello-world" else "Up 5 minutes"
                command = '"/hello"' if image == "hello-world" else '"/entrypoint"'
                lines.append(
                    f"{container_id}   {image:<13} {command:<10} 5 minutes ago    {status:<27} {name}"
                )
            return self._ok("\n".join(lines) + "\n")
        if args[:1] == ["run"] and args[-1:] == ["hello-world"]:
            self._ran_hello_world = True
            return self._ok(HELLO_WORLD)
        return self._fail(1, "docker: simulated shell: only 'docker ps' and 'docker run hello-world' work\n")
