"""pods/exec over WebSocket: the official client's ``kubernetes.stream`` against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import RESIZE_CHANNEL

from infrastructure.simulator import exec as pod_exec
from infrastructure.simulator.shell import BANNER
from infrastructure.supervisor import contract

from .profile_helpers import ENV_NAMESPACE, running_profile, watch_pod_until
from .test_supervisor_sim import cvm_pod

NS = "default"


def _pod(name: str, container: dict, **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }


def _run(handle, name: str, container: dict, *, running: bool = True, **spec: object) -> None:
    store = handle.store
    store.create("pods", _pod(name, container, **spec), NS)
    pod = store.get_stored("pods", NS, name).obj
    state = {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"waiting": {"reason": "X"}}
    pod["status"] = {
        "phase": "Running" if running else "Pending",
        "containerStatuses": [
            {"name": container["name"], "ready": running, "restartCount": 0, "state": state}
        ],
    }
    store.update_status("pods", pod, namespace=NS)


def _supervisor(handle, name: str = "cvm", *, started: bool = True, entrypoint: str = "/sbin/init") -> None:
    env = [
        {"name": contract.ENV_INNER_IMAGE, "value": "registry.example/dev:1"},
        {"name": contract.ENV_INNER_USERNAME, "value": "alice"},
        {"name": contract.ENV_INNER_HOSTNAME, "value": "devbox"},
    ]
    container = {"name": contract.SUPERVISOR_CONTAINER_NAME, "image": "supervisor:1", "env": env}
    _run(handle, name, container, hostname="pod-host")
    if started:
        for output in (contract.entrypoint_line(entrypoint), contract.STARTUP_COMPLETE):
            handle.store.append_log(
                NS, name, contract.SUPERVISOR_CONTAINER_NAME, contract.format_log_line("done", output)
            )


def _api(handle) -> client.CoreV1Api:
    return client.CoreV1Api(handle.api_client)


def _exec(handle, name: str, command: list[str], **kwargs):
    return stream(
        _api(handle).connect_get_namespaced_pod_exec,
        name,
        NS,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        **kwargs,
    )


def _interactive(handle, name: str, command: list[str], container: str | None = None):
    extra = {"container": container} if container else {}
    return stream(
        _api(handle).connect_get_namespaced_pod_exec,
        name,
        NS,
        command=command,
        stderr=False,
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
        **extra,
    )


def _read_until(ws, text: str, timeout: float = 5.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline and ws.is_open():
        ws.update(timeout=0.1)
        seen += ws.read_stdout(timeout=0) if ws.peek_stdout() else ""
    assert text in seen, seen
    return seen


def test_one_command_runs_and_answers(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "python:3.12", "command": ["sleep", "inf"]})
    assert _exec(simulated_cluster, "std", ["whoami"]) == "root\n"
    assert "sleep inf" in _exec(simulated_cluster, "std", ["ps", "1"])
    assert "Simulated Linux (image python:3.12)" in _exec(
        simulated_cluster, "std", ["cat", "/etc/os-release"]
    )


def test_non_root_container_runs_as_the_home_user(simulated_cluster) -> None:
    container = {
        "name": "workspace",
        "image": "dev:1",
        "command": ["sleep", "inf"],
        "securityContext": {"runAsUser": 1000},
        "volumeMounts": [{"name": "data", "mountPath": "/home/bob"}],
    }
    _run(simulated_cluster, "std", container)
    assert _exec(simulated_cluster, "std", ["/bin/sh", "-c", "whoami"]) == "bob\n"
    assert "docker: command not found" in _exec(simulated_cluster, "std", ["docker", "ps"])


def test_interactive_tty_session_with_resize_and_exit(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    ws = _interactive(simulated_cluster, "std", ["su", "-", "alice"])
    assert ws.subprotocol == pod_exec.V5_PROTOCOL
    _read_until(ws, BANNER.replace("\n", "\r\n"))
    ws.write_stdin("whoami\r")
    output = _read_until(ws, "alice\r\n")
    assert "whoami\r\n" in output  # the TTY echoed what was typed
    ws.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 132, "Height": 43}))
    ws.write_stdin("stty size\r")
    _read_until(ws, "43 132")
    ws.write_stdin("exit 3\r")
    ws.run_forever(timeout=5)
    assert ws.returncode == 3


def test_v4_protocol_and_stdin_close(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    ws = stream(
        _api(simulated_cluster).connect_get_namespaced_pod_exec,
        "std",
        NS,
        command=["sh"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
        _headers={"sec-websocket-protocol": pod_exec.V4_PROTOCOL},
    )
    assert ws.subprotocol == pod_exec.V4_PROTOCOL
    ws.write_stdin("hostname\nnope\nexit\n")
    ws.run_forever(timeout=5)
    assert ws.read_stdout() == "std\n"
    assert "nope: command not found" in ws.read_stderr()
    assert ws.returncode == 127


def test_v5_stdin_close_ends_the_shell(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    ws = stream(
        _api(simulated_cluster).connect_get_namespaced_pod_exec,
        "std",
        NS,
        command=["sh"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    ws.write_stdin("pwd\n")
    ws.close_channel(0)
    ws.run_forever(timeout=5)
    assert ws.read_stdout() == "/root\n"
    assert ws.returncode == 0


def test_supervisor_enters_the_inner_container_with_docker_exec(simulated_cluster) -> None:
    _supervisor(simulated_cluster)
    ws = _interactive(
        simulated_cluster, "cvm", ["docker", "exec", "-it", "workspace", "su", "-", "alice"], "supervisor"
    )
    _read_until(ws, "alice@devbox:~$ ")
    for line, expected in (
        ("whoami", "alice"),
        ("pwd", "/home/alice"),
        ("hostname", "devbox"),
        ("ps 1", "/sbin/init"),
        ("docker ps", "CONTAINER ID"),
        ("docker run hello-world", "Hello from Docker!"),
        ("cat /etc/os-release", "registry.example/dev:1"),
    ):
        ws.write_stdin(line + "\r")
        _read_until(ws, expected)
    ws.write_stdin("exit\r")
    ws.run_forever(timeout=5)
    assert ws.returncode == 0


def test_supervisor_itself_lists_the_inner_container(simulated_cluster) -> None:
    _supervisor(simulated_cluster, entrypoint=contract.KEEPALIVE_ENTRYPOINT)
    assert "workspace" in _exec(simulated_cluster, "cvm", ["docker", "ps"])
    inner_pid1 = _exec(simulated_cluster, "cvm", ["docker", "exec", "workspace", "ps", "1"])
    assert " ".join(contract.KEEPALIVE_COMMAND) in inner_pid1


def test_docker_exec_before_startup_complete_fails(simulated_cluster) -> None:
    _supervisor(simulated_cluster, started=False)
    ws = _interactive(simulated_cluster, "cvm", ["docker", "exec", "-it", "workspace", "sh"], "supervisor")
    ws.run_forever(timeout=5)
    assert "No such container: workspace" in ws.read_stdout()
    assert ws.returncode == 1


def test_runtimeclass_wrapper_shows_the_logged_entrypoint(simulated_cluster) -> None:
    container = {"name": "workspace", "image": "dev:1", "command": contract.runtimeclass_wrapper_command()}
    _run(simulated_cluster, "rc", container)
    line = contract.format_log_line("done", contract.entrypoint_line(contract.INIT_ENTRYPOINT))
    simulated_cluster.store.append_log(NS, "rc", "workspace", line)
    assert "/sbin/init" in _exec(simulated_cluster, "rc", ["ps", "1"])
    assert "CONTAINER ID" in _exec(simulated_cluster, "rc", ["docker", "ps"])


def test_session_ends_with_137_when_the_pod_goes(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    ws = _interactive(simulated_cluster, "std", ["sh"])
    _read_until(ws, "# ")
    simulated_cluster.store.delete("pods", NS, "std", grace_period_seconds=0)
    ws.run_forever(timeout=5)
    assert ws.returncode == pod_exec.EXIT_KILLED


@pytest.mark.parametrize(
    ("name", "kwargs", "running", "message"),
    [
        ("missing", {}, True, 'pods \\"missing\\" not found'),
        ("std", {"container": "other"}, True, "container other is not valid for pod std"),
        ("std", {}, False, 'container not found (\\"workspace\\")'),
    ],
)
def test_refusals_before_the_upgrade(simulated_cluster, name, kwargs, running, message) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"}, running=running)
    with pytest.raises(ApiException) as raised:
        _exec(simulated_cluster, name, ["whoami"], **kwargs)
    assert message in raised.value.reason
    assert pod_exec.requests(simulated_cluster.cluster)[-1].command == ("whoami",)


def test_plain_request_without_upgrade_is_refused(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    with pytest.raises(ApiException) as raised:
        _api(simulated_cluster).connect_get_namespaced_pod_exec("std", NS, command=["whoami"], stdout=True)
    assert raised.value.status == 400
    assert "Upgrade request required" in raised.value.body


def test_exec_needs_rbac_create_on_pods_exec(simulated_cluster) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    token = simulated_cluster.token_for_service_account(NS, "nobody")
    api = client.CoreV1Api(simulated_cluster.api_client_for_token(token))
    with pytest.raises(ApiException) as raised:
        stream(api.connect_get_namespaced_pod_exec, "std", NS, command=["whoami"], stdout=True)
    assert "403" in raised.value.reason
    assert pod_exec.requests(simulated_cluster.cluster) == []


def test_real_kubectl_exec(simulated_cluster, tmp_path) -> None:
    _run(simulated_cluster, "std", {"name": "workspace", "image": "dev:1"})
    env = {**os.environ, "KUBECONFIG": str(simulated_cluster.kubeconfig_path), "KUBECACHEDIR": str(tmp_path)}

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/usr/bin/kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
        )

    assert kubectl("exec", "std", "--", "whoami").stdout == "root\n"
    result = kubectl("exec", "-i", "std", "--", "sh", stdin="hostname\nexit 4\n")
    assert (result.returncode, result.stdout) == (4, "std\n")
    assert "command terminated with exit code 4" in result.stderr


@pytest.mark.parametrize(
    ("image", "pid1"),
    [
        ("ghcr.io/coderadmin/example-systemd:22.04", contract.INIT_ENTRYPOINT),
        ("ghcr.io/coderadmin/example-plain:1", " ".join(contract.KEEPALIVE_COMMAND)),
    ],
)
def test_kubelet_played_supervisor_answers_with_its_entrypoint(tmp_path, image, pid1) -> None:
    with running_profile("demo", tmp_path) as handle:
        api = _api(handle)
        api.create_namespaced_pod(ENV_NAMESPACE, cvm_pod("cvm", image))
        watch_pod_until(
            api,
            "cvm",
            lambda p: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
            ENV_NAMESPACE,
        )
        output = stream(
            api.connect_get_namespaced_pod_exec,
            "cvm",
            ENV_NAMESPACE,
            command=["docker", "exec", "workspace", "ps", "1"],
            stdout=True,
            stderr=True,
        )
        assert pid1 in output
        assert "dev-box" in stream(
            api.connect_get_namespaced_pod_exec,
            "cvm",
            ENV_NAMESPACE,
            command=["docker", "exec", "workspace", "hostname"],
            stdout=True,
        )
