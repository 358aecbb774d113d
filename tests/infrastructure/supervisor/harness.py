"""A harness around the supervisor with the recording fake runner.

The fake is a true boundary: there is no Docker engine, sysbox or privileged kernel access on
the machines that run these tests, so every command and kernel-file write is recorded and
answered from a script instead, and the tests assert the exact command lines and their order.
"""

from __future__ import annotations

from infrastructure.supervisor import contract
from infrastructure.supervisor import entrypoint as ep
from infrastructure.supervisor.config import load_config
from infrastructure.supervisor.runner import RecordingRunner

TERMINATION_LOG = "/test/termination-log"
IMAGE = "registry.example/team/dev:1.0"
VALID_ENV = {
    contract.ENV_INNER_IMAGE: IMAGE,
    contract.ENV_INNER_USERNAME: "coder",
    contract.ENV_INNER_HOSTNAME: "alice-dev",
    contract.ENV_CPU_MILLICORES: "1500",
    contract.ENV_MEMORY_BYTES: "4294967296",
}
PASSWD = "coder:x:1000:1001:Coder:/home/coder:/bin/bash"


class BuildLog:
    """Stands in for stdout: every line must parse as a build-log line; each is also recorded
    into the runner's event list, so tests can check the order of log lines and commands."""

    def __init__(self, runner: RecordingRunner) -> None:
        self.runner = runner
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        for line in complete:
            parsed = contract.parse_log_line(line)
            assert parsed is not None, f"not a build-log line: {line!r}"
            self.lines.append(line)
            self.runner.events.append(("log", parsed.type, parsed.output))
        return len(text)

    def flush(self) -> None:
        assert self._partial == "", "a build-log line was left unterminated"

    def entries(self) -> list[tuple[str, str]]:
        return [(event[1], event[2]) for event in self.runner.events if event[0] == "log"]


class Harness:
    def __init__(self) -> None:
        self.runner = RecordingRunner(
            files={
                ep.PROC_SELF_CGROUP: "0::/\n",
                f"{ep.CGROUP_ROOT}/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
                f"{ep.CGROUP_ROOT}/cgroup.procs": "1\n7\n",
                ep.ETH0_MTU_PATH: "1450\n",
            }
        )
        self.out = BuildLog(self.runner)
        self.clock = 0.0
        self.sleeps: list[float] = []
        self.sigterm_when_supervising = True
        self.runner.daemon("sysbox-mgr", creates=[ep.SYSBOX_MGR_SOCKET])
        self.runner.daemon("sysbox-fs", creates=[ep.SYSBOX_FS_SOCKET])
        self.runner.daemon("dockerd", creates=[ep.DOCKER_SOCKET])
        self.runner.reply(["docker", "run", "--rm"], (0, f"init=yes\n{PASSWD}\n"))
        self.runner.reply(["docker", "run", "--detach"], (0, "c0ffee\n"))
        self.supervisor: ep.Supervisor | None = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock += seconds
        if seconds == ep.SUPERVISE_POLL_SECONDS and self.sigterm_when_supervising:
            assert self.supervisor is not None
            self.supervisor.request_stop()

    def run(self, **env: str) -> int:
        config = load_config({**VALID_ENV, **env})
        self.supervisor = ep.Supervisor(
            config,
            self.runner,
            out=self.out,
            clock=lambda: self.clock,
            sleep=self.sleep,
            termination_log=TERMINATION_LOG,
        )
        return self.supervisor.run()

    # --- Views of what happened --------------------------------------------------------------
    def commands(self) -> list[tuple[str, ...]]:
        return self.runner.commands()

    def writes(self) -> dict[str, str]:
        return {event[1]: event[2] for event in self.runner.events if event[0] == "write"}

    def logs(self) -> list[tuple[str, str]]:
        return self.out.entries()

    def index(self, event: tuple) -> int:
        return self.runner.events.index(event)

    def termination_reason(self) -> str | None:
        return self.writes().get(TERMINATION_LOG)
