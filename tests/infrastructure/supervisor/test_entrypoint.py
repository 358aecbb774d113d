"""The supervisor's decisions, scenario by scenario, through the recording fake runner."""

from __future__ import annotations

import io

import pytest

from infrastructure.supervisor import contract
from infrastructure.supervisor import entrypoint as ep
from infrastructure.supervisor.runner import RecordingRunner

from .harness import IMAGE, PASSWD, TERMINATION_LOG, VALID_ENV, Harness

INSPECT = (
    "docker",
    "run",
    "--rm",
    "--network=none",
    "--entrypoint=/bin/sh",
    IMAGE,
    "-c",
    "if [ -x /sbin/init ]; then echo init=yes; else echo init=no; fi; "
    "command -v getent >/dev/null 2>&1 || exit 3; "
    'getent passwd "$1" || exit 2',
    "inspect",
    "coder",
)
INNER_RUN_PREFIX = (
    "docker",
    "run",
    "--detach",
    "--runtime=sysbox-runc",
    "--name=workspace",
    "--hostname=alice-dev",
    "--cpu-period=100000",
    "--cpu-quota=150000",
    "--memory=4294967296",
)
STANDARD_VOLUMES = (
    "--volume=/var/lib/coderadmin/home:/home/coder",
    "--volume=/var/lib/coderadmin/inner-docker:/var/lib/docker",
    "--volume=/var/lib/coderadmin/inner-containers:/var/lib/containers",
)
DOCKERD = (
    "dockerd",
    "--host=unix:///var/run/docker.sock",
    "--data-root=/var/lib/docker",
    "--storage-driver=overlay2",
    "--add-runtime=sysbox-runc=/usr/bin/sysbox-runc",
    "--exec-opt=native.cgroupdriver=cgroupfs",
    "--cgroup-parent=/docker",
    "--default-cgroupns-mode=private",
    "--mtu=1450",
)


def test_happy_path_exact_sequence(harness: Harness):
    """Every command and kernel write of a full start and a SIGTERM, in order."""
    assert harness.run() == 0
    events = [event for event in harness.runner.events if event[0] != "log"]
    assert events == [
        ("write", "/proc/self/oom_score_adj", "-1000"),
        ("write", "/etc/subuid", "sysbox:100000:65536\n"),
        ("write", "/etc/subgid", "sysbox:100000:65536\n"),
        ("run", ("mkdir", "-p", "/sys/fs/cgroup/supervisor"), {}),
        ("write", "/sys/fs/cgroup/supervisor/cgroup.procs", "1"),
        ("write", "/sys/fs/cgroup/supervisor/cgroup.procs", "7"),
        ("write", "/sys/fs/cgroup/cgroup.subtree_control", "+cpuset +cpu +io +memory +pids"),
        ("start", ("sysbox-mgr", "--data-root=/var/lib/sysbox", "--disable-inner-image-preload")),
        ("start", ("sysbox-fs",)),
        ("start", DOCKERD),
        ("run", ("docker", "pull", IMAGE), {}),
        ("run", INSPECT, {}),
        (
            "run",
            (
                "mkdir",
                "-p",
                contract.HOME_SOURCE_PATH,
                contract.INNER_DOCKER_SOURCE_PATH,
                contract.INNER_CONTAINERS_SOURCE_PATH,
            ),
            {},
        ),
        ("run", ("chown", "101000:101001", contract.HOME_SOURCE_PATH), {}),
        (
            "run",
            (
                "chown",
                "100000:100000",
                contract.INNER_DOCKER_SOURCE_PATH,
                contract.INNER_CONTAINERS_SOURCE_PATH,
            ),
            {},
        ),
        ("run", ("docker", "rm", "--force", "workspace"), {}),
        (
            "run",
            (
                *INNER_RUN_PREFIX,
                *STANDARD_VOLUMES,
                "--stop-signal=SIGRTMIN+3",
                "--entrypoint=/sbin/init",
                IMAGE,
            ),
            {},
        ),
        ("write", "/sys/fs/cgroup/docker/c0ffee/init.scope/cpu.max", "150000 100000"),
        ("write", contract.READY_MARKER_PATH, "/sbin/init\n"),
        ("start", ("docker", "wait", "workspace")),
        ("run", ("docker", "stop", f"--time={contract.INNER_STOP_TIMEOUT_SECONDS}", "workspace"), {}),
        ("signal", "docker", "SIGTERM"),
        ("signal", "dockerd", "SIGTERM"),
        ("signal", "sysbox-fs", "SIGTERM"),
        ("signal", "sysbox-mgr", "SIGTERM"),
    ]
    assert harness.termination_reason() is None


def test_build_log_lines_all_parse_and_done_carries_the_entrypoint(harness: Harness):
    harness.run()
    assert harness.out.lines, "the supervisor logged nothing"
    assert all(contract.parse_log_line(line) for line in harness.out.lines)
    logs = harness.logs()
    assert logs[0] == ("info", f"supervisor starting for image {IMAGE}")
    done = [entry for entry in logs if entry[0] == contract.LOG_DONE]
    assert done == [("done", "entrypoint: /sbin/init")]
    assert logs[-2:] == [("info", "stopping: SIGTERM received"), ("info", "stopped")]


def test_ready_marker_is_written_only_after_startup_complete(harness: Harness):
    harness.run()
    complete = harness.index(("log", "info", contract.STARTUP_COMPLETE))
    entrypoint = harness.index(("log", "done", contract.entrypoint_line(contract.INIT_ENTRYPOINT)))
    marker = harness.index(("write", contract.READY_MARKER_PATH, "/sbin/init\n"))
    assert complete < entrypoint < marker


def test_image_without_init_gets_the_keepalive(harness: Harness):
    harness.runner.reply(["docker", "run", "--rm"], (0, f"init=no\n{PASSWD}\n"))
    assert harness.run() == 0
    run = next(cmd for cmd in harness.commands() if cmd[:3] == ("docker", "run", "--detach"))
    assert run == (
        *INNER_RUN_PREFIX,
        *STANDARD_VOLUMES,
        "--entrypoint=/bin/sh",
        IMAGE,
        *contract.KEEPALIVE_COMMAND[1:],
    )
    assert ("done", "entrypoint: keep-alive") in harness.logs()
    assert harness.writes()[contract.READY_MARKER_PATH] == "keep-alive\n"


def test_image_without_init_runs_the_configured_command(harness: Harness):
    harness.runner.reply(["docker", "run", "--rm"], (0, f"init=no\n{PASSWD}\n"))
    harness.run(**{contract.ENV_INNER_COMMAND: '["/usr/bin/code-server", "--auth", "none"]'})
    run = next(cmd for cmd in harness.commands() if cmd[:3] == ("docker", "run", "--detach"))
    assert run[-4:] == ("--entrypoint=/usr/bin/code-server", IMAGE, "--auth", "none")
    assert ("done", "entrypoint: keep-alive") in harness.logs()


def test_missing_user_is_fatal_with_the_reason(harness: Harness):
    harness.runner.reply(["docker", "run", "--rm"], (2, "init=yes\n"))
    assert harness.run() == ep.EXIT_FAILURE
    reason = (
        f"user 'coder' does not exist in image {IMAGE}: create it in the image or choose an existing user"
    )
    assert harness.termination_reason() == reason
    assert harness.logs()[-1] == ("error", reason)
    assert contract.READY_MARKER_PATH not in harness.writes()
    assert not any(cmd[:3] == ("docker", "run", "--detach") for cmd in harness.commands())
    # the daemons are stopped, newest first
    assert [e for e in harness.runner.events if e[0] == "signal"] == [
        ("signal", "dockerd", "SIGTERM"),
        ("signal", "sysbox-fs", "SIGTERM"),
        ("signal", "sysbox-mgr", "SIGTERM"),
    ]


def test_image_without_getent_is_fatal(harness: Harness):
    harness.runner.reply(["docker", "run", "--rm"], (3, "init=no\n"))
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == f"image {IMAGE} has no getent, so user 'coder' cannot be checked"


def test_inspection_failure_is_fatal(harness: Harness):
    harness.runner.reply(["docker", "run", "--rm"], (127, "exec: /bin/sh: no such file or directory\n"))
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == (
        f"inspecting {IMAGE} failed (exit code 127): exec: /bin/sh: no such file or directory"
    )


def test_pull_retries_with_backoff_then_succeeds(harness: Harness):
    harness.runner.reply(
        ["docker", "pull"],
        (
            1,
            "Error response from daemon: Get https://registry.example/v2/: net/http: TLS handshake timeout\n",
        ),
        (1, "Error response from daemon: connection reset by peer\n"),
        (0, "1.0: Pulling from team/dev\nStatus: Downloaded newer image\n"),
    )
    assert harness.run() == 0
    pulls = [cmd for cmd in harness.commands() if cmd[:2] == ("docker", "pull")]
    assert pulls == [("docker", "pull", IMAGE)] * 3
    assert harness.sleeps[:2] == [2.0, 4.0]
    logs = harness.logs()
    assert (
        "info",
        "pull attempt 1/10 failed: Error response from daemon: Get https://registry.example/v2/: "
        "net/http: TLS handshake timeout; retrying in 2s",
    ) in logs
    assert ("info", f"pulled {IMAGE}") in logs
    assert harness.termination_reason() is None


def test_pull_fails_after_all_attempts(harness: Harness):
    harness.runner.reply(["docker", "pull"], (1, "Error response from daemon: i/o timeout\n"))
    assert harness.run() == ep.EXIT_FAILURE
    pulls = [cmd for cmd in harness.commands() if cmd[:2] == ("docker", "pull")]
    assert len(pulls) == contract.PULL_ATTEMPTS
    assert harness.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    assert harness.termination_reason() == (
        f"pulling {IMAGE} failed after 10 attempts: Error response from daemon: i/o timeout"
    )
    assert not any(cmd == INSPECT for cmd in harness.commands())
    assert contract.READY_MARKER_PATH not in harness.writes()


def test_certificate_error_fails_fast(harness: Harness):
    output = (
        "Error response from daemon: Get https://registry.example/v2/: "
        "tls: failed to verify certificate: x509: certificate signed by unknown authority\n"
    )
    harness.runner.reply(["docker", "pull"], (1, output))
    assert harness.run() == ep.EXIT_FAILURE
    assert [cmd for cmd in harness.commands() if cmd[:2] == ("docker", "pull")] == [("docker", "pull", IMAGE)]
    assert harness.sleeps == []
    assert (
        harness.termination_reason() == f"pulling {IMAGE} failed with a certificate error: {output.strip()}"
    )


def test_missing_tag_fails_fast(harness: Harness):
    output = (
        f"Error response from daemon: manifest for {IMAGE} not found: manifest unknown: manifest unknown\n"
    )
    harness.runner.reply(["docker", "pull"], (1, output))
    assert harness.run() == ep.EXIT_FAILURE
    assert len([cmd for cmd in harness.commands() if cmd[:2] == ("docker", "pull")]) == 1
    assert harness.termination_reason() == f"pulling {IMAGE} failed: {output.strip()}"


def test_pull_uses_mounted_registry_credentials(harness: Harness):
    harness.runner.files[f"{contract.REGISTRY_AUTH_PATH}/{contract.REGISTRY_AUTH_FILE}"] = "{}"
    harness.run()
    pull = next(
        event for event in harness.runner.events if event[0] == "run" and event[1][:2] == ("docker", "pull")
    )
    assert pull[2] == {"DOCKER_CONFIG": contract.REGISTRY_AUTH_PATH}
    assert ("info", f"pulling {IMAGE} with registry credentials") in harness.logs()


def test_pull_progress_is_rate_limited(harness: Harness):
    harness.runner.reply(
        ["docker", "pull"], (0, "".join(f"layer{i}: Downloading {i}MB\n" for i in range(50)))
    )
    record = harness.runner.run

    def run_with_half_second_lines(args, **kwargs):
        on_line = kwargs.get("on_line")
        if on_line is not None:

            def ticking(line: str) -> None:
                harness.clock += 0.5
                on_line(line)

            kwargs["on_line"] = ticking
        return record(args, **kwargs)

    harness.runner.run = run_with_half_second_lines  # type: ignore[method-assign]
    harness.run()
    lines = [output for _, output in harness.logs() if output.startswith("pull: ")]
    # 50 lines over 25 s, at most one every 5 s
    assert lines == [f"pull: layer{i}: Downloading {i}MB" for i in range(0, 50, 10)]


def test_dockerd_dying_is_fatal_with_its_last_log_line(harness: Harness):
    harness.runner.daemon(
        "dockerd",
        returncode=1,
        output="level=info msg=starting\nfailed to start daemon: bad bip\n",
        replace=True,
    )
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "dockerd exited with code 1: failed to start daemon: bad bip"
    assert len([cmd for cmd in harness.commands() if cmd[0] == "dockerd"]) == 1  # no storage fallback
    assert not any(cmd[:2] == ("docker", "pull") for cmd in harness.commands())
    assert ("signal", "sysbox-mgr", "SIGTERM") in harness.runner.events


def test_sysbox_dying_is_fatal(harness: Harness):
    harness.runner.daemon("sysbox-fs", returncode=2, output="fuse: device not found\n", replace=True)
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "sysbox-fs exited with code 2: fuse: device not found"
    assert not any(cmd[0] == "dockerd" for cmd in harness.commands())


def test_socket_deadline(harness: Harness):
    harness.runner.daemon("sysbox-mgr", replace=True)  # alive, never listens
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "sysbox-mgr did not open /run/sysbox/sysmgr.sock within 30s"
    assert sum(harness.sleeps) == pytest.approx(ep.SYSBOX_START_SECONDS)
    assert ("signal", "sysbox-mgr", "SIGTERM") in harness.runner.events


def test_dockerd_dying_while_running_ends_the_pod(harness: Harness):
    harness.sigterm_when_supervising = False
    original = harness.sleep

    def sleep(seconds: float) -> None:
        original(seconds)
        harness.runner.processes["dockerd"].returncode = 137

    harness.sleep = sleep  # type: ignore[method-assign]
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "dockerd exited with code 137"


def test_inner_container_exit_ends_the_pod(harness: Harness):
    harness.runner.daemon("docker", returncode=0, output="0\n")
    assert harness.run() == 0
    assert ("info", "the inner container exited") in harness.logs()
    assert not any(cmd[:2] == ("docker", "stop") for cmd in harness.commands())


def test_inner_container_failure_ends_the_pod_with_reason(harness: Harness):
    harness.runner.daemon("docker", returncode=0, output="137\n")
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "the inner container exited with status 137"


def test_disk_full_falls_back_to_vfs_up_front(harness: Harness):
    harness.runner.free = 10 * 1024**2
    assert harness.run() == 0
    dockerd = next(cmd for cmd in harness.commands() if cmd[0] == "dockerd")
    assert "--storage-driver=vfs" in dockerd
    assert (
        "info",
        "warning: the data volume is full (10 MiB free): dockerd uses the slower vfs storage driver",
    ) in harness.logs()


def test_disk_full_error_from_dockerd_restarts_it_with_vfs(harness: Harness):
    harness.runner.daemon(
        "dockerd",
        returncode=1,
        output="failed to mount overlay: no space left on device\nfailed to start daemon\n",
        replace=True,
    )
    harness.runner.daemon("dockerd", creates=[ep.DOCKER_SOCKET])
    assert harness.run() == 0
    started = [cmd for cmd in harness.commands() if cmd[0] == "dockerd"]
    assert [cmd[3] for cmd in started] == ["--storage-driver=overlay2", "--storage-driver=vfs"]
    assert (
        "info",
        "warning: the data volume is full (dockerd exited with code 1: failed to start daemon): "
        "dockerd restarts with the slower vfs storage driver",
    ) in harness.logs()


def test_resource_translation_and_options(harness: Harness):
    harness.run(
        **{
            contract.ENV_CPU_MILLICORES: "250",
            contract.ENV_MEMORY_BYTES: "536870912",
            contract.ENV_BRIDGE_CIDR: "172.30.0.0/16",
            contract.ENV_INNER_MOUNTS: "/var/lib/coderadmin/tools:/opt/tools:ro",
            contract.ENV_INNER_ENV: '{"B": "2", "A": "x y"}',
        }
    )
    run = next(cmd for cmd in harness.commands() if cmd[:3] == ("docker", "run", "--detach"))
    assert "--cpu-period=100000" in run and "--cpu-quota=25000" in run and "--memory=536870912" in run
    assert run[run.index("--volume=/var/lib/coderadmin/inner-containers:/var/lib/containers") + 1 :] == (
        "--volume=/var/lib/coderadmin/tools:/opt/tools:ro",
        "--env=A=x y",
        "--env=B=2",
        "--stop-signal=SIGRTMIN+3",
        "--entrypoint=/sbin/init",
        IMAGE,
    )
    dockerd = next(cmd for cmd in harness.commands() if cmd[0] == "dockerd")
    assert dockerd[-1] == "--bip=172.30.0.1/16"
    assert harness.writes()["/sys/fs/cgroup/docker/c0ffee/init.scope/cpu.max"] == "25000 100000"


@pytest.mark.parametrize(
    ("env", "devices", "mknods"),
    [
        ({}, [], []),
        (
            {contract.ENV_ADD_TUN: "true"},
            ["--device=/dev/net/tun"],
            [("mkdir", "-p", "/dev/net"), ("mknod", "-m", "0666", "/dev/net/tun", "c", "10", "200")],
        ),
        (
            {contract.ENV_ADD_FUSE: "true"},
            ["--device=/dev/fuse"],
            [("mknod", "-m", "0666", "/dev/fuse", "c", "10", "229")],
        ),
    ],
)
def test_tun_and_fuse_devices(harness: Harness, env, devices, mknods):
    harness.runner.files["/dev"] = ""
    harness.run(**env)
    commands = harness.commands()
    assert [cmd for cmd in commands if cmd[0] == "mknod" or cmd[-1] == "/dev/net"] == mknods
    run = next(cmd for cmd in commands if cmd[:3] == ("docker", "run", "--detach"))
    assert [arg for arg in run if arg.startswith("--device=")] == devices
    assert run[len(INNER_RUN_PREFIX) : len(INNER_RUN_PREFIX) + len(devices)] == tuple(devices)


def test_existing_devices_are_not_recreated(harness: Harness):
    harness.runner.files.update({"/dev/net/tun": "", "/dev/fuse": ""})
    harness.run(**{contract.ENV_ADD_TUN: "yes", contract.ENV_ADD_FUSE: "1"})
    assert not any(cmd[0] == "mknod" for cmd in harness.commands())
    run = next(cmd for cmd in harness.commands() if cmd[:3] == ("docker", "run", "--detach"))
    assert [arg for arg in run if arg.startswith("--device=")] == [
        "--device=/dev/net/tun",
        "--device=/dev/fuse",
    ]


def test_inner_run_failure_is_fatal_and_writes_no_marker(harness: Harness):
    harness.runner.reply(
        ["docker", "run", "--detach"], (125, "docker: Error response from daemon: bad runtime\n")
    )
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == (
        "starting the inner container failed: docker: Error response from daemon: bad runtime"
    )
    assert contract.READY_MARKER_PATH not in harness.writes()
    assert contract.STARTUP_COMPLETE not in [output for _, output in harness.logs()]


def test_cgroup_v1_host_keeps_docker_defaults(harness: Harness):
    harness.runner.files[ep.PROC_SELF_CGROUP] = "12:pids:/kubepods/x\n4:cpu,cpuacct:/kubepods/x\n"
    del harness.runner.files[f"{ep.CGROUP_ROOT}/cgroup.controllers"]
    assert harness.run() == 0
    dockerd = next(cmd for cmd in harness.commands() if cmd[0] == "dockerd")
    assert not any(arg.startswith(("--cgroup-parent", "--exec-opt")) for arg in dockerd)
    assert not any(path.endswith("cgroup.subtree_control") for path in harness.writes())
    writes = harness.writes()
    base = "/sys/fs/cgroup/cpu/docker/c0ffee/syscont-cgroup-root"
    assert writes[f"{base}/cpu.cfs_period_us"] == "100000"
    assert writes[f"{base}/cpu.cfs_quota_us"] == "150000"


def test_nested_own_cgroup_delegates_below_it(harness: Harness):
    own = "/kubepods/burstable/pod1/abc"
    harness.runner.files[ep.PROC_SELF_CGROUP] = f"0::{own}\n"
    harness.runner.files[f"{ep.CGROUP_ROOT}{own}/cgroup.controllers"] = "cpu memory pids\n"
    harness.runner.files[f"{ep.CGROUP_ROOT}{own}/cgroup.procs"] = "42\n"
    harness.run()
    writes = harness.writes()
    assert writes[f"/sys/fs/cgroup{own}/supervisor/cgroup.procs"] == "42"
    assert writes[f"/sys/fs/cgroup{own}/cgroup.subtree_control"] == "+cpu +memory +pids"
    dockerd = next(cmd for cmd in harness.commands() if cmd[0] == "dockerd")
    assert f"--cgroup-parent={own}/docker" in dockerd
    assert writes[f"/sys/fs/cgroup{own}/docker/c0ffee/init.scope/cpu.max"] == "150000 100000"


def test_unreadable_mtu_is_left_to_dockerd(harness: Harness):
    del harness.runner.files[ep.ETH0_MTU_PATH]
    harness.run()
    dockerd = next(cmd for cmd in harness.commands() if cmd[0] == "dockerd")
    assert not any(arg.startswith("--mtu") for arg in dockerd)
    assert ("info", "warning: cannot read the MTU of eth0: dockerd uses its default") in harness.logs()


def test_bootstrap_script_runs_as_the_user_before_startup_complete(harness: Harness):
    harness.runner.reply(["docker", "exec"], (0, "cloned dotfiles\n"))
    harness.run(**{contract.ENV_BOOTSTRAP_SCRIPT: "git clone dotfiles"})
    exec_event = (
        "run",
        ("docker", "exec", "--user=coder", "workspace", "/bin/sh", "-c", "git clone dotfiles"),
        {},
    )
    assert harness.index(exec_event) < harness.index(("log", "info", contract.STARTUP_COMPLETE))
    assert ("info", "bootstrap: cloned dotfiles") in harness.logs()


def test_failing_bootstrap_script_is_a_warning(harness: Harness):
    harness.runner.reply(["docker", "exec"], (1, "oops\n"))
    assert harness.run(**{contract.ENV_BOOTSTRAP_SCRIPT: "false"}) == 0
    assert ("info", "warning: the bootstrap script exited with code 1") in harness.logs()
    assert contract.READY_MARKER_PATH in harness.writes()


def test_sigterm_during_startup_stops_cleanly(harness: Harness):
    def stop_on_pull() -> None:
        assert harness.supervisor is not None
        harness.supervisor.request_stop()

    harness.runner.reply(["docker", "pull"], (1, "Error: i/o timeout\n"), action=stop_on_pull)
    assert harness.run() == 0
    assert len([cmd for cmd in harness.commands() if cmd[:2] == ("docker", "pull")]) == 1
    assert not any(cmd[:2] == ("docker", "stop") for cmd in harness.commands())
    assert harness.termination_reason() is None
    assert harness.logs()[-2:] == [("info", "stopping: SIGTERM received"), ("info", "stopped")]


def test_sigterm_stops_inner_container_before_the_daemons(harness: Harness):
    assert harness.run() == 0
    stop = harness.index(
        ("run", ("docker", "stop", f"--time={contract.INNER_STOP_TIMEOUT_SECONDS}", "workspace"), {})
    )
    assert stop < harness.index(("signal", "dockerd", "SIGTERM"))
    assert contract.INNER_STOP_TIMEOUT_SECONDS < 90  # fits the default grace period


def test_daemon_ignoring_sigterm_is_killed(harness: Harness):
    harness.runner.daemon("sysbox-fs", creates=[ep.SYSBOX_FS_SOCKET], exits_on_terminate=False, replace=True)
    assert harness.run() == 0
    assert [event for event in harness.runner.events if event[0] == "signal"] == [
        ("signal", "docker", "SIGTERM"),
        ("signal", "dockerd", "SIGTERM"),
        ("signal", "sysbox-fs", "SIGTERM"),
        ("signal", "sysbox-fs", "SIGKILL"),
        ("signal", "sysbox-mgr", "SIGTERM"),
    ]


def test_main_rejects_bad_config_with_termination_log():
    runner = RecordingRunner()
    out = io.StringIO()
    code = ep.main(
        environ={**VALID_ENV, contract.ENV_CPU_MILLICORES: "1.5"},
        runner=runner,
        out=out,
        termination_log=TERMINATION_LOG,
    )
    assert code == ep.EXIT_CONFIG
    reason = (
        "invalid supervisor configuration: "
        f"{contract.ENV_CPU_MILLICORES} must be a whole number of millicores greater than 0, got '1.5'"
    )
    assert runner.events == [("write", TERMINATION_LOG, reason)]
    [line] = out.getvalue().splitlines()
    parsed = contract.parse_log_line(line)
    assert parsed is not None and (parsed.type, parsed.output) == ("error", reason)


def test_oom_protection_failure_is_only_a_warning(harness: Harness):
    harness.runner.unwritable.add(ep.OOM_SCORE_ADJ_PATH)
    assert harness.run() == 0
    assert (
        "info",
        "warning: cannot protect the supervisor from the OOM killer: "
        "[Errno 13] Permission denied: '/proc/self/oom_score_adj'",
    ) in harness.logs()


def test_cpu_limit_copy_failure_is_only_a_warning(harness: Harness):
    harness.runner.unwritable.add("/sys/fs/cgroup/docker/c0ffee/init.scope/cpu.max")
    assert harness.run() == 0
    assert any(output.startswith("warning: cannot show the CPU limit inside") for _, output in harness.logs())
    assert contract.READY_MARKER_PATH in harness.writes()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (
            ep.SUBUID_PATH,
            "cannot write the user-namespace id ranges: [Errno 13] Permission denied: '/etc/subuid'",
        ),
        (
            "/sys/fs/cgroup/cgroup.subtree_control",
            "cannot delegate cgroup controllers ['cpuset', 'cpu', 'io', 'memory', 'pids']: "
            "[Errno 13] Permission denied: '/sys/fs/cgroup/cgroup.subtree_control'",
        ),
        (
            contract.READY_MARKER_PATH,
            "cannot write the ready marker /var/run/coderadmin/ready: "
            "[Errno 13] Permission denied: '/var/run/coderadmin/ready'",
        ),
    ],
)
def test_fatal_write_failures(harness: Harness, path, reason):
    harness.runner.unwritable.add(path)
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == reason


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (["mkdir", "-p", "/sys/fs/cgroup/supervisor"], "cannot create the supervisor's cgroup: read-only"),
        (["chown", "101000:101001"], "cannot set the owner of the home directory: read-only"),
        (["chown", "100000:100000"], "cannot set the owner of the cache directories: read-only"),
        (["mknod"], "cannot create the device /dev/fuse: read-only"),
    ],
)
def test_fatal_command_failures(harness: Harness, prefix, reason):
    harness.runner.reply(prefix, (1, "read-only\n"))
    assert harness.run(**{contract.ENV_ADD_FUSE: "true"}) == ep.EXIT_FAILURE
    assert harness.termination_reason() == reason
    assert contract.READY_MARKER_PATH not in harness.writes()


def test_unexpected_errors_still_end_with_a_reason(harness: Harness):
    def boom() -> None:
        raise RuntimeError("boom")

    harness.runner.reply(["docker", "pull"], (0, ""), action=boom)
    assert harness.run() == ep.EXIT_FAILURE
    assert harness.termination_reason() == "supervisor error: RuntimeError('boom')"
    assert ("signal", "dockerd", "SIGTERM") in harness.runner.events


def test_failed_docker_stop_is_a_warning_and_still_stops_the_daemons(harness: Harness):
    harness.runner.reply(["docker", "stop"], (1, "Error response from daemon: timeout\n"))
    assert harness.run() == 0
    assert ("info", "warning: docker stop failed: Error response from daemon: timeout") in harness.logs()
    assert ("signal", "sysbox-mgr", "SIGTERM") in harness.runner.events
