"""The supervising container's program: sysbox and Docker in, the user's environment out.

It validates its configuration, starts sysbox-mgr, sysbox-fs and dockerd, pulls the user's image,
inspects it, and runs it as the inner container under sysbox-runc; it reports every step as a
JSON-lines build log on stdout and signals readiness with a marker file only once the inner
container runs. On SIGTERM it stops the inner container within the pod's grace period.

Run as ``python3 -m infrastructure.supervisor.entrypoint``. Standard library only (plus the
supervisor contract and its sibling modules), so the image needs nothing but python3.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from infrastructure.supervisor import contract
from infrastructure.supervisor.config import CPU_PERIOD, Config, ConfigError, load_config
from infrastructure.supervisor.runner import Process, Runner, SystemRunner

# --- Host paths and tunables (the README's table explains each) ------------------------------
SYSBOX_MGR_SOCKET = "/run/sysbox/sysmgr.sock"
SYSBOX_FS_SOCKET = "/run/sysbox/sysfs.sock"
SYSBOX_RUNC = "/usr/bin/sysbox-runc"
DOCKER_SOCKET = "/var/run/docker.sock"
LOG_DIR = "/var/log/coderadmin"
ETH0_MTU_PATH = "/sys/class/net/eth0/mtu"
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
OOM_SCORE_ADJ_PATH = "/proc/self/oom_score_adj"
OOM_SCORE_ADJ = -1000
SUBUID_PATH = "/etc/subuid"
SUBGID_PATH = "/etc/subgid"
SUBID_USER = "sysbox"  # sysbox-mgr allocates the inner container's ids from this user's range
SUBID_COUNT = 65536
SUPERVISOR_CGROUP = "supervisor"  # leaf for our own processes (cgroup v2: no processes in inner nodes)
DELEGATED_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
SYSBOX_V2_INIT_CGROUP = "init.scope"  # cgroup v2: where sysbox puts the system container's processes
SYSBOX_V1_CGROUP_ROOT = "syscont-cgroup-root"  # cgroup v1: the same, under each controller
TUN_DEVICE = ("/dev/net/tun", "10", "200")
FUSE_DEVICE = ("/dev/fuse", "10", "229")
STORAGE_DRIVER = "overlay2"
FALLBACK_STORAGE_DRIVER = "vfs"
MIN_FREE_BYTES_FOR_OVERLAY = 256 * 1024**2
NO_SPACE_MESSAGE = "no space left on device"
SYSBOX_START_SECONDS = 30.0
DOCKERD_START_SECONDS = 60.0
SOCKET_POLL_SECONDS = 0.25
SUPERVISE_POLL_SECONDS = 1.0
DAEMON_STOP_SECONDS = 20.0
PULL_BACKOFF_SECONDS = 2.0
PULL_BACKOFF_CAP_SECONDS = 60.0
PULL_PROGRESS_INTERVAL_SECONDS = 5.0
CERTIFICATE_ERRORS = ("x509:", "certificate signed by unknown authority", "tls: failed to verify certificate")
PERMANENT_PULL_ERRORS = ("manifest unknown", "pull access denied", "invalid reference format", "unauthorized")
EXIT_FAILURE = 1
EXIT_CONFIG = 2
INSPECT_USER_MISSING = 2
INSPECT_NO_GETENT = 3


class StartupError(Exception):
    """A fatal step: the message is the reason shown in the build log and the pod status."""


class DaemonExited(StartupError):
    """A daemon ended before opening its socket; ``log`` is what it wrote meanwhile."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


class _Stopping(Exception):
    """SIGTERM arrived while starting up."""


@dataclass(frozen=True)
class Inspection:
    has_init: bool
    uid: int
    gid: int


class Supervisor:
    def __init__(
        self,
        config: Config,
        runner: Runner,
        *,
        out: TextIO,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        termination_log: str = contract.TERMINATION_LOG_PATH,
    ) -> None:
        self.config = config
        self.runner = runner
        self._out = out
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._termination_log = termination_log
        self._daemons: list[Process] = []
        self._dockerd: Process | None = None
        self._container_started = False
        self._last_progress: float | None = None

    # --- Public ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Called from the SIGTERM handler: every wait and step boundary notices it."""
        self._stop.set()

    def run(self) -> int:
        """Start everything, then supervise until SIGTERM; returns the process exit code."""
        try:
            self._startup()
        except _Stopping:
            return self._graceful_stop()
        except StartupError as exc:
            return self._fail(str(exc))
        except Exception as exc:
            return self._fail(f"supervisor error: {exc!r}")
        return self._supervise()

    # --- Output ------------------------------------------------------------------------------
    def log(self, type_: str, output: str) -> None:
        self._out.write(contract.format_log_line(type_, output) + "\n")
        self._out.flush()

    def warn(self, output: str) -> None:
        self.log(contract.LOG_INFO, f"warning: {output}")

    def _fail(self, reason: str) -> int:
        self.log(contract.LOG_ERROR, reason)
        write_termination_log(self.runner, self._termination_log, reason)
        self._stop_daemons()
        return EXIT_FAILURE

    # --- Startup -----------------------------------------------------------------------------
    def _startup(self) -> None:
        config = self.config
        self.log(contract.LOG_INFO, f"supervisor starting for image {config.image}")
        self._protect_from_oom()
        self._write_subids()
        cgroup = self._delegate_cgroups()
        self._check_stop()
        self._start_daemon("sysbox-mgr", sysbox_mgr_args(), SYSBOX_MGR_SOCKET, SYSBOX_START_SECONDS)
        self._start_daemon("sysbox-fs", sysbox_fs_args(), SYSBOX_FS_SOCKET, SYSBOX_START_SECONDS)
        self._check_stop()
        self._start_dockerd(cgroup)
        self._pull()
        self._check_stop()
        inspection = self._inspect()
        self._prepare_mounts(inspection)
        devices = self._prepare_devices()
        self._check_stop()
        entrypoint = contract.INIT_ENTRYPOINT if inspection.has_init else contract.KEEPALIVE_ENTRYPOINT
        container_id = self._run_inner(inspection, devices)
        self._copy_cpu_quota(cgroup, container_id)
        self._bootstrap()
        self._check_stop()
        self.log(contract.LOG_INFO, contract.STARTUP_COMPLETE)
        self.log(contract.LOG_DONE, contract.entrypoint_line(entrypoint))
        try:
            self.runner.write_file(contract.READY_MARKER_PATH, entrypoint + "\n")
        except OSError as exc:
            raise StartupError(f"cannot write the ready marker {contract.READY_MARKER_PATH}: {exc}") from exc

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopping

    def _protect_from_oom(self) -> None:
        try:
            self.runner.write_file(OOM_SCORE_ADJ_PATH, str(OOM_SCORE_ADJ))
        except OSError as exc:
            self.warn(f"cannot protect the supervisor from the OOM killer: {exc}")

    def _write_subids(self) -> None:
        line = f"{SUBID_USER}:{contract.USERNS_UID_OFFSET}:{SUBID_COUNT}\n"
        try:
            self.runner.write_file(SUBUID_PATH, line)
            self.runner.write_file(SUBGID_PATH, line)
        except OSError as exc:
            raise StartupError(f"cannot write the user-namespace id ranges: {exc}") from exc

    def _delegate_cgroups(self) -> str | None:
        """Move our processes into a leaf and enable controllers, so dockerd can nest the inner
        container's cgroup under the pod's (cgroup v2). Returns our cgroup path, None on v1."""
        own = next(
            (
                line[3:]
                for line in (self.runner.read_file(PROC_SELF_CGROUP) or "").splitlines()
                if line.startswith("0::")
            ),
            None,
        )
        base = cgroup_dir(own or "/")
        controllers = self.runner.read_file(f"{base}/cgroup.controllers")
        if own is None or controllers is None:
            self.log(contract.LOG_INFO, "cgroup v1 host: dockerd keeps its default cgroup layout")
            return None
        leaf = f"{base}/{SUPERVISOR_CGROUP}"
        self._must(["mkdir", "-p", leaf], "cannot create the supervisor's cgroup")
        for pid in (self.runner.read_file(f"{base}/cgroup.procs") or "").split():
            try:
                self.runner.write_file(f"{leaf}/cgroup.procs", pid)
            except OSError:
                continue  # the process exited meanwhile
        enabled = [name for name in DELEGATED_CONTROLLERS if name in controllers.split()]
        try:
            self.runner.write_file(f"{base}/cgroup.subtree_control", " ".join(f"+{name}" for name in enabled))
        except OSError as exc:
            raise StartupError(f"cannot delegate cgroup controllers {enabled}: {exc}") from exc
        return own

    def _start_daemon(self, name: str, args: list[str], socket: str, seconds: float) -> Process:
        log_path = daemon_log_path(name)
        already = len(self.runner.read_file(log_path) or "")
        self.log(contract.LOG_INFO, f"starting {name}")
        process = self.runner.start(args, log_path=log_path)
        self._daemons.append(process)
        deadline = self._clock() + seconds
        while not self.runner.exists(socket):
            code = process.poll()
            if code is not None:
                log = (self.runner.read_file(log_path) or "")[already:]
                tail = last_line(log)
                raise DaemonExited(f"{name} exited with code {code}" + (f": {tail}" if tail else ""), log)
            if self._clock() >= deadline:
                raise StartupError(f"{name} did not open {socket} within {seconds:.0f}s")
            self._sleep(SOCKET_POLL_SECONDS)
            self._check_stop()
        return process

    def _start_dockerd(self, cgroup: str | None) -> None:
        mtu = self._eth0_mtu()
        driver = STORAGE_DRIVER
        try:
            free = self.runner.free_bytes(contract.OUTER_DOCKER_DATA_PATH)
        except OSError:
            free = None
        if free is not None and free < MIN_FREE_BYTES_FOR_OVERLAY:
            driver = FALLBACK_STORAGE_DRIVER
            self.warn(
                f"the data volume is full ({free // 1024**2} MiB free): "
                f"dockerd uses the slower {driver} storage driver"
            )
        try:
            self._dockerd = self._start_dockerd_with(driver, mtu, cgroup)
        except DaemonExited as exc:
            if driver != STORAGE_DRIVER or NO_SPACE_MESSAGE not in exc.log.lower():
                raise
            driver = FALLBACK_STORAGE_DRIVER
            self.warn(
                f"the data volume is full ({exc}): dockerd restarts with the slower {driver} storage driver"
            )
            self._dockerd = self._start_dockerd_with(driver, mtu, cgroup)

    def _start_dockerd_with(self, driver: str, mtu: int | None, cgroup: str | None) -> Process:
        args = dockerd_args(self.config, driver, mtu, cgroup)
        return self._start_daemon("dockerd", args, DOCKER_SOCKET, DOCKERD_START_SECONDS)

    def _eth0_mtu(self) -> int | None:
        text = (self.runner.read_file(ETH0_MTU_PATH) or "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
        self.warn("cannot read the MTU of eth0: dockerd uses its default")
        return None

    def _pull(self) -> None:
        image = self.config.image
        env: dict[str, str] = {}
        if self.runner.exists(f"{contract.REGISTRY_AUTH_PATH}/{contract.REGISTRY_AUTH_FILE}"):
            env["DOCKER_CONFIG"] = contract.REGISTRY_AUTH_PATH
        self.log(contract.LOG_INFO, f"pulling {image}" + (" with registry credentials" if env else ""))
        delay = PULL_BACKOFF_SECONDS
        for attempt in range(1, contract.PULL_ATTEMPTS + 1):
            result = self.runner.run(["docker", "pull", image], env=env, on_line=self._pull_progress)
            if result.ok:
                self.log(contract.LOG_INFO, f"pulled {image}")
                return
            reason = last_line(result.output) or f"exit code {result.returncode}"
            lowered = result.output.lower()
            if any(marker in lowered for marker in CERTIFICATE_ERRORS):
                raise StartupError(f"pulling {image} failed with a certificate error: {reason}")
            if any(marker in lowered for marker in PERMANENT_PULL_ERRORS):
                raise StartupError(f"pulling {image} failed: {reason}")
            if attempt == contract.PULL_ATTEMPTS:
                raise StartupError(f"pulling {image} failed after {attempt} attempts: {reason}")
            self.log(
                contract.LOG_INFO,
                f"pull attempt {attempt}/{contract.PULL_ATTEMPTS} failed: {reason}; retrying in {delay:.0f}s",
            )
            self._sleep(delay)
            self._check_stop()
            delay = min(delay * 2, PULL_BACKOFF_CAP_SECONDS)

    def _pull_progress(self, line: str) -> None:
        """At most one progress line per interval: a large image prints thousands."""
        text = line.strip()
        now = self._clock()
        if not text or (
            self._last_progress is not None and now - self._last_progress < PULL_PROGRESS_INTERVAL_SECONDS
        ):
            return
        self._last_progress = now
        self.log(contract.LOG_INFO, f"pull: {text}")

    def _inspect(self) -> Inspection:
        config = self.config
        self.log(contract.LOG_INFO, f"inspecting {config.image}")
        result = self.runner.run(inspect_args(config))
        if result.returncode == INSPECT_USER_MISSING:
            raise StartupError(
                f"user {config.username!r} does not exist in image {config.image}: "
                "create it in the image or choose an existing user"
            )
        if result.returncode == INSPECT_NO_GETENT:
            raise StartupError(
                f"image {config.image} has no getent, so user {config.username!r} cannot be checked"
            )
        if not result.ok:
            detail = last_line(result.output)
            raise StartupError(f"inspecting {config.image} failed (exit code {result.returncode}): {detail}")
        lines = result.output.splitlines()
        entry = next((line for line in lines if line.startswith(f"{config.username}:")), "")
        fields = entry.split(":")
        if len(fields) < 4 or not fields[2].isdigit() or not fields[3].isdigit():
            raise StartupError(f"cannot read the passwd entry of {config.username!r} in {config.image}")
        return Inspection(has_init="init=yes" in lines, uid=int(fields[2]), gid=int(fields[3]))

    def _prepare_mounts(self, inspection: Inspection) -> None:
        offset = contract.USERNS_UID_OFFSET
        sources = [source for source, _ in contract.standard_inner_mounts(self.config.username)]
        self._must(["mkdir", "-p", *sources], "cannot create the mount sources")
        home, *caches = sources
        owner = f"{offset + inspection.uid}:{offset + inspection.gid}"
        self._must(["chown", owner, home], "cannot set the owner of the home directory")
        self._must(["chown", f"{offset}:{offset}", *caches], "cannot set the owner of the cache directories")

    def _prepare_devices(self) -> list[str]:
        wanted = [
            device
            for device, on in ((TUN_DEVICE, self.config.add_tun), (FUSE_DEVICE, self.config.add_fuse))
            if on
        ]
        for path, major, minor in wanted:
            if self.runner.exists(path):
                continue
            parent = os.path.dirname(path)
            if not self.runner.exists(parent):
                self._must(["mkdir", "-p", parent], f"cannot create {parent}")
            self._must(["mknod", "-m", "0666", path, "c", major, minor], f"cannot create the device {path}")
        return [path for path, _, _ in wanted]

    def _run_inner(self, inspection: Inspection, devices: list[str]) -> str:
        # A container of that name survives a rebuild with the outer Docker data on the volume.
        self.runner.run(["docker", "rm", "--force", contract.INNER_CONTAINER_NAME])
        self.log(contract.LOG_INFO, "starting the inner container")
        result = self.runner.run(inner_run_args(self.config, inspection.has_init, devices))
        if not result.ok:
            raise StartupError(f"starting the inner container failed: {last_line(result.output)}")
        self._container_started = True
        container_id = last_line(result.output)
        if not container_id:
            raise StartupError("docker run printed no container id")
        return container_id

    def _copy_cpu_quota(self, cgroup: str | None, container_id: str) -> None:
        """Sysbox moves the inner processes into a child cgroup that shows no CPU limit: copy it."""
        quota = self.config.cpu_quota
        if cgroup is None:
            base = f"{CGROUP_ROOT}/cpu/docker/{container_id}/{SYSBOX_V1_CGROUP_ROOT}"
            writes = [
                (f"{base}/cpu.cfs_period_us", str(CPU_PERIOD)),
                (f"{base}/cpu.cfs_quota_us", str(quota)),
            ]
        else:
            base = f"{cgroup_dir(docker_cgroup_parent(cgroup))}/{container_id}/{SYSBOX_V2_INIT_CGROUP}"
            writes = [(f"{base}/cpu.max", f"{quota} {CPU_PERIOD}")]
        try:
            for path, value in writes:
                self.runner.write_file(path, value)
        except OSError as exc:
            self.warn(f"cannot show the CPU limit inside the environment: {exc}")

    def _bootstrap(self) -> None:
        script = self.config.bootstrap_script
        if script is None:
            return
        self.log(contract.LOG_INFO, "running the bootstrap script")
        result = self.runner.run(
            [
                "docker",
                "exec",
                f"--user={self.config.username}",
                contract.INNER_CONTAINER_NAME,
                "/bin/sh",
                "-c",
                script,
            ],
            on_line=lambda line: self.log(contract.LOG_INFO, f"bootstrap: {line}"),
        )
        if not result.ok:
            self.warn(f"the bootstrap script exited with code {result.returncode}")

    def _must(self, args: list[str], what: str) -> None:
        result = self.runner.run(args)
        if not result.ok:
            raise StartupError(f"{what}: {last_line(result.output) or f'exit code {result.returncode}'}")

    # --- Running -----------------------------------------------------------------------------
    def _supervise(self) -> int:
        """Wait for SIGTERM; end early (with the reason) if dockerd or the inner container ends."""
        wait_log = daemon_log_path("inner-wait")
        waiter = self.runner.start(["docker", "wait", contract.INNER_CONTAINER_NAME], log_path=wait_log)
        self._daemons.append(waiter)
        while not self._stop.is_set():
            assert self._dockerd is not None
            code = self._dockerd.poll()
            if code is not None:
                tail = last_line(self.runner.read_file(daemon_log_path("dockerd")) or "")
                return self._fail(f"dockerd exited with code {code}" + (f": {tail}" if tail else ""))
            if waiter.poll() is not None:
                status = last_line(self.runner.read_file(wait_log) or "")
                self._container_started = False
                if status == "0":
                    self.log(contract.LOG_INFO, "the inner container exited")
                    self._stop_daemons()
                    return 0
                return self._fail(f"the inner container exited with status {status or 'unknown'}")
            self._sleep(SUPERVISE_POLL_SECONDS)
        return self._graceful_stop()

    def _graceful_stop(self) -> int:
        self.log(contract.LOG_INFO, "stopping: SIGTERM received")
        if self._container_started:
            timeout = contract.INNER_STOP_TIMEOUT_SECONDS
            result = self.runner.run(
                ["docker", "stop", f"--time={timeout}", contract.INNER_CONTAINER_NAME], timeout=timeout + 15
            )
            if not result.ok:
                self.warn(f"docker stop failed: {last_line(result.output)}")
        self._stop_daemons()
        self.log(contract.LOG_INFO, "stopped")
        return 0

    def _stop_daemons(self) -> None:
        """Newest first: the waiter, dockerd (which needs sysbox for its containers), then sysbox."""
        while self._daemons:
            process = self._daemons.pop()
            if process.poll() is not None:
                continue
            process.terminate()
            if process.wait(DAEMON_STOP_SECONDS) is None:
                process.kill()
                process.wait(DAEMON_STOP_SECONDS)


# --- Command lines (pure functions of the configuration) -----------------------------------------


def sysbox_mgr_args() -> list[str]:
    return ["sysbox-mgr", f"--data-root={contract.SYSBOX_DATA_PATH}", "--disable-inner-image-preload"]


def sysbox_fs_args() -> list[str]:
    return ["sysbox-fs"]


def dockerd_args(config: Config, storage_driver: str, mtu: int | None, cgroup: str | None) -> list[str]:
    args = [
        "dockerd",
        f"--host=unix://{DOCKER_SOCKET}",
        f"--data-root={contract.OUTER_DOCKER_DATA_PATH}",
        f"--storage-driver={storage_driver}",
        f"--add-runtime=sysbox-runc={SYSBOX_RUNC}",
    ]
    if cgroup is not None:
        args += [
            "--exec-opt=native.cgroupdriver=cgroupfs",
            f"--cgroup-parent={docker_cgroup_parent(cgroup)}",
            "--default-cgroupns-mode=private",
        ]
    if mtu is not None:
        args.append(f"--mtu={mtu}")
    if config.bridge_ip is not None:
        args.append(f"--bip={config.bridge_ip}")
    return args


def inspect_args(config: Config) -> list[str]:
    """A throwaway container that prints init=yes|no and the user's passwd entry."""
    script = (
        f"if [ -x {contract.INIT_ENTRYPOINT} ]; then echo init=yes; else echo init=no; fi; "
        f"command -v getent >/dev/null 2>&1 || exit {INSPECT_NO_GETENT}; "
        f'getent passwd "$1" || exit {INSPECT_USER_MISSING}'
    )
    return [
        "docker",
        "run",
        "--rm",
        "--network=none",
        "--entrypoint=/bin/sh",
        config.image,
        "-c",
        script,
        "inspect",
        config.username,
    ]


def inner_run_args(config: Config, has_init: bool, devices: list[str]) -> list[str]:
    args = [
        "docker",
        "run",
        "--detach",
        "--runtime=sysbox-runc",
        f"--name={contract.INNER_CONTAINER_NAME}",
        f"--hostname={config.hostname}",
        f"--cpu-period={CPU_PERIOD}",
        f"--cpu-quota={config.cpu_quota}",
        f"--memory={config.memory_bytes}",
    ]
    args += [f"--device={device}" for device in devices]
    args += [f"--volume={mount.volume_arg()}" for mount in config.all_mounts()]
    args += [f"--env={key}={value}" for key, value in sorted(config.inner_env.items())]
    if has_init:
        # systemd shuts down on SIGRTMIN+3; SIGTERM would only make it re-execute itself.
        return [*args, "--stop-signal=SIGRTMIN+3", f"--entrypoint={contract.INIT_ENTRYPOINT}", config.image]
    command = config.inner_command or contract.KEEPALIVE_COMMAND
    return [*args, f"--entrypoint={command[0]}", config.image, *command[1:]]


def docker_cgroup_parent(cgroup: str) -> str:
    return cgroup.rstrip("/") + "/docker"


def cgroup_dir(cgroup: str) -> str:
    return CGROUP_ROOT + cgroup.rstrip("/")


def daemon_log_path(name: str) -> str:
    return f"{LOG_DIR}/{name}.log"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def write_termination_log(runner: Runner, path: str, reason: str) -> None:
    """The kubelet copies this file into the pod status, where the dashboard reads the reason."""
    try:
        runner.write_file(path, reason)
    except OSError as exc:
        print(f"cannot write {path}: {exc}", file=sys.stderr)


def main(
    environ: Mapping[str, str] | None = None,
    runner: Runner | None = None,
    out: TextIO | None = None,
    termination_log: str = contract.TERMINATION_LOG_PATH,
) -> int:
    environ = os.environ if environ is None else environ
    runner = runner or SystemRunner()
    out = out or sys.stdout
    try:
        config = load_config(environ)
    except ConfigError as exc:
        out.write(contract.format_log_line(contract.LOG_ERROR, str(exc)) + "\n")
        out.flush()
        write_termination_log(runner, termination_log, str(exc))
        return EXIT_CONFIG
    supervisor = Supervisor(config, runner, out=out, termination_log=termination_log)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: supervisor.request_stop())
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
