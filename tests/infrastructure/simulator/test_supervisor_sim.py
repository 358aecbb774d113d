"""The simulated supervisor: configuration read through the contract, build log in the real format."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator import supervisor_sim
from infrastructure.simulator.profiles import Timing, read_profile
from infrastructure.simulator.supervisor_sim import (
    EnvError,
    container_env,
    is_supervisor,
    is_wrapper,
    read_config,
    simulate_pod_supervisor,
    wrapper_output,
)
from infrastructure.supervisor import contract

from .profile_helpers import ENV_NAMESPACE, eventually, list_version, running_profile, watch_pod_until

CATALOG = read_profile("demo").images
TIMING = Timing()
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def supervisor_container(image="ghcr.io/coderadmin/example-systemd:22.04", user="coder", **extra_env):
    env = {
        contract.ENV_INNER_IMAGE: image,
        contract.ENV_INNER_USERNAME: user,
        contract.ENV_INNER_HOSTNAME: "dev-box",
        contract.ENV_CPU_MILLICORES: "2000",
        contract.ENV_MEMORY_BYTES: str(4 * 1024**3),
        **extra_env,
    }
    return {
        "name": contract.SUPERVISOR_CONTAINER_NAME,
        "image": "ghcr.io/coderadmin/coderadmin-supervisor:0.1.0",
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "volumeMounts": [{"name": contract.VOLUME_RUN, "mountPath": contract.RUN_PATH}],
    }


def run(container):
    env = container_env({"metadata": {"namespace": "ns"}, "spec": {"containers": [container]}}, container)
    return simulate_pod_supervisor(container, env, CATALOG, TIMING)


def parsed(result):
    lines = [contract.parse_log_line(line) for line in result.lines(START)]
    assert all(line is not None for line in lines)
    return lines


def test_systemd_image_becomes_ready_with_init():
    result = run(supervisor_container())
    lines = parsed(result)
    assert result.ready
    assert result.exit_code is None
    assert result.entrypoint == contract.INIT_ENTRYPOINT
    outputs = [line.output for line in lines]
    assert contract.entrypoint_line(contract.INIT_ENTRYPOINT) in outputs
    assert (lines[-1].type, lines[-1].output) == (contract.LOG_DONE, contract.STARTUP_COMPLETE)
    assert any(output.startswith("pull ghcr.io/coderadmin/example-systemd:22.04: ") for output in outputs)
    assert [line.time for line in lines] == sorted(line.time for line in lines)
    assert lines[-1].time > START
    assert result.duration == pytest.approx((lines[-1].time - START).total_seconds(), abs=0.01)


def test_plain_image_keeps_alive():
    result = run(supervisor_container("ghcr.io/coderadmin/example-plain:1"))
    assert result.ready
    assert result.entrypoint == contract.KEEPALIVE_ENTRYPOINT
    outputs = [line.output for line in parsed(result)]
    assert contract.parse_entrypoint(
        next(o for o in outputs if o.startswith(contract.ENTRYPOINT_PREFIX))
    ) == (contract.KEEPALIVE_ENTRYPOINT)


def test_missing_user_fails_with_the_real_message():
    result = run(supervisor_container("ghcr.io/coderadmin/example-no-user:1"))
    assert not result.ready
    assert result.exit_code == 1
    assert (
        result.termination_message
        == 'user "coder" does not exist in image ghcr.io/coderadmin/example-no-user:1'
    )
    last = parsed(result)[-1]
    assert (last.type, last.output) == (contract.LOG_ERROR, result.termination_message)


def test_unpullable_retries_then_fails():
    result = run(supervisor_container("registry.invalid/team/dev:1"))
    errors = [line for line in parsed(result) if line.type == contract.LOG_ERROR]
    assert len(errors) == contract.PULL_ATTEMPTS
    assert errors[0].output.startswith(
        f"pull image registry.invalid/team/dev:1: attempt 1/{contract.PULL_ATTEMPTS}"
    )
    assert "no such host" in errors[0].output
    assert result.termination_message.startswith("pull image registry.invalid/team/dev:1: ")
    assert result.termination_message.endswith(f"failed after {contract.PULL_ATTEMPTS} attempts")
    assert result.exit_code == 1
    assert not result.ready


def test_missing_tag_reports_manifest_unknown():
    result = run(supervisor_container("docker.io/team/unpullable:9"))
    assert "manifest for docker.io/team/unpullable:9 not found" in result.termination_message


def test_certificate_error_fails_fast():
    result = run(supervisor_container("selfsigned.example.com/team/dev:1"))
    errors = [line for line in parsed(result) if line.type == contract.LOG_ERROR]
    assert len(errors) == 1
    assert "x509: certificate signed by unknown authority" in result.termination_message
    assert "attempt" not in result.termination_message


def test_invalid_reference_fails_fast():
    result = run(supervisor_container("Registry.example/UPPER:1"))
    assert result.termination_message == "pull image Registry.example/UPPER:1: invalid reference format"


def test_crashing_inner_image():
    result = run(supervisor_container("ghcr.io/coderadmin/example-crash:1", user="root"))
    assert result.exit_code == 1
    assert result.termination_message.startswith("inner container exited with code 1: fatal:")
    assert result.entrypoint == contract.KEEPALIVE_ENTRYPOINT


def test_bootstrap_script_and_registry_credentials_are_logged():
    container = supervisor_container(**{contract.ENV_BOOTSTRAP_SCRIPT: "echo hi"})
    container["volumeMounts"].append(
        {"name": contract.VOLUME_REGISTRY_AUTH, "mountPath": contract.REGISTRY_AUTH_PATH}
    )
    outputs = [line.output for line in parsed(run(container))]
    assert "running bootstrap script" in outputs
    assert (
        f"using registry credentials from {contract.REGISTRY_AUTH_PATH}/{contract.REGISTRY_AUTH_FILE}"
        in outputs
    )


@pytest.mark.parametrize("missing", contract.REQUIRED_ENV)
def test_missing_required_environment_fails(missing):
    container = supervisor_container()
    container["env"] = [item for item in container["env"] if item["name"] != missing]
    result = run(container)
    assert result.termination_message == f"missing required environment variable {missing}"
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({contract.ENV_CPU_MILLICORES: "2 cores"}, "must be integers"),
        ({contract.ENV_ADD_TUN: "maybe"}, "must be true or false"),
        ({contract.ENV_INNER_MOUNTS: "/a"}, "invalid mount '/a'"),
        ({contract.ENV_INNER_MOUNTS: "/a:/b:rw"}, "invalid mount"),
        ({contract.ENV_INNER_ENV: "[1]"}, "is not a JSON object"),
        ({contract.ENV_INNER_ENV: "{"}, "is not a JSON object"),
        ({contract.ENV_INNER_COMMAND: '{"a": 1}'}, "is not a JSON list of strings"),
        ({contract.ENV_INNER_COMMAND: "["}, "is not a JSON list of strings"),
    ],
)
def test_invalid_configuration_fails(env, message):
    result = run(supervisor_container(**env))
    assert message in result.termination_message
    assert not result.ready


def test_read_config_parses_every_setting():
    env = {
        contract.ENV_INNER_IMAGE: "img:1",
        contract.ENV_INNER_USERNAME: "coder",
        contract.ENV_INNER_HOSTNAME: "h",
        contract.ENV_CPU_MILLICORES: "1500",
        contract.ENV_MEMORY_BYTES: "1073741824",
        contract.ENV_INNER_MOUNTS: f"{contract.HOME_SOURCE_PATH}:/home/coder, /etc/x:/etc/x:ro",
        contract.ENV_ADD_TUN: "true",
        contract.ENV_ADD_FUSE: "0",
        contract.ENV_BRIDGE_CIDR: "172.30.0.1/16",
        contract.ENV_INNER_ENV: json.dumps({"A": 1}),
        contract.ENV_INNER_COMMAND: json.dumps(["sleep", "infinity"]),
    }
    config = read_config({}, env)
    assert config.mounts == ((contract.HOME_SOURCE_PATH, "/home/coder", False), ("/etc/x", "/etc/x", True))
    assert (config.cpu_millicores, config.memory_bytes) == (1500, 1073741824)
    assert (config.add_tun, config.add_fuse, config.bridge_cidr) == (True, False, "172.30.0.1/16")
    assert config.inner_env == {"A": "1"}
    assert config.inner_command == ("sleep", "infinity")
    assert not config.registry_auth


def test_container_env_resolves_downward_api_and_references():
    container = {
        "name": "c",
        "resources": {"limits": {"cpu": "1500m", "memory": "2Gi"}},
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "CORES", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
    }
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
        "spec": {"containers": [container]},
    }
    data = {("Secret", "ns", "s"): {"token": "t0k"}, ("ConfigMap", "ns", "cm"): {"mode": "fast"}}
    env = container_env(pod, container, lambda kind, ns, name: data.get((kind, ns, name)))
    assert env == {
        "CPU": "1500",
        "CORES": "2",
        "MEM": str(2 * 1024**3),
        "REQ": "0",
        "NAME": "p",
        "LABEL": "x",
        "TOKEN": "t0k",
        "MODE": "fast",
        "CM_mode": "fast",
    }


def test_unset_limits_resolve_to_node_allocatable():
    container = {
        "name": "c",
        "env": [{"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
    }
    pod = {"metadata": {"namespace": "ns"}, "spec": {"containers": [container]}}
    assert container_env(pod, container, allocatable={"memory": "1Gi"}) == {"M": str(1024**3)}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"secretKeyRef": {"name": "s", "key": "k"}}, 'secret "s" not found'),
        (
            {"configMapKeyRef": {"name": "present", "key": "nope"}},
            "couldn't find key nope in ConfigMap ns/present",
        ),
    ],
)
def test_missing_references_raise_the_kubelet_message(source, message):
    container = {"name": "c", "env": [{"name": "X", "valueFrom": source}]}
    pod = {"metadata": {"namespace": "ns"}, "spec": {"containers": [container]}}
    lookup = {("ConfigMap", "ns", "present"): {"a": "b"}}
    with pytest.raises(EnvError, match=message):
        container_env(pod, container, lambda kind, ns, name: lookup.get((kind, ns, name)))


def test_missing_env_from_source():
    container = {"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}
    with pytest.raises(EnvError, match='secret "s" not found'):
        container_env({"metadata": {"namespace": "ns"}, "spec": {"containers": [container]}}, container)


def test_supervisor_detection():
    assert is_supervisor(supervisor_container(), CATALOG)
    assert is_supervisor({"image": "ghcr.io/coderadmin/coderadmin-supervisor:1"}, CATALOG)
    assert not is_supervisor({"image": "ubuntu:22.04", "env": [{"name": "X", "value": "1"}]}, CATALOG)


@pytest.mark.parametrize(
    ("image", "entrypoint"),
    [
        ("ghcr.io/coderadmin/example-systemd:1", contract.INIT_ENTRYPOINT),
        ("ubuntu:22.04", contract.KEEPALIVE_ENTRYPOINT),
    ],
)
def test_runtimeclass_wrapper_output(image, entrypoint):
    container = {"image": image, "command": contract.runtimeclass_wrapper_command()}
    assert is_wrapper(container)
    assert not is_wrapper({"image": image, "command": ["/sbin/init"]})
    line, chosen = wrapper_output(CATALOG.lookup(image), START)
    assert chosen == entrypoint
    parsed_line = contract.parse_log_line(line)
    assert parsed_line == contract.LogLine(START, contract.LOG_DONE, contract.entrypoint_line(entrypoint))


def test_wrapper_line_matches_the_shell_printf():
    script = contract.runtimeclass_wrapper_command()[2]
    line, _ = wrapper_output(CATALOG.lookup("ubuntu:22.04"), START)
    template = line.replace("2026-01-02T03:04:05Z", "%s")
    assert f"printf '{template}\\n'" in script


def test_failure_helper_has_no_entrypoint():
    assert supervisor_sim.simulate_pod_supervisor({}, {}, CATALOG, TIMING).entrypoint is None


# --- Through the simulated cluster -----------------------------------------------------------------


def cvm_pod(name, image, user="coder", downward=True):
    container = supervisor_container(image, user)
    if downward:
        container["env"] = [
            e
            for e in container["env"]
            if e["name"] not in (contract.ENV_CPU_MILLICORES, contract.ENV_MEMORY_BYTES)
        ]
        container["env"] += [
            {
                "name": contract.ENV_CPU_MILLICORES,
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
            },
            {
                "name": contract.ENV_MEMORY_BYTES,
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}},
            },
        ]
    container["resources"] = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    container["securityContext"] = {"privileged": True}
    container["readinessProbe"] = {"exec": {"command": list(contract.READINESS_COMMAND)}, "periodSeconds": 2}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": contract.INNER_STOP_TIMEOUT_SECONDS + 30,
            "containers": [container],
            "volumes": [{"name": contract.VOLUME_RUN, "emptyDir": {}}],
        },
    }


@pytest.fixture
def core(tmp_path):
    with running_profile("demo", tmp_path) as handle:
        yield client.CoreV1Api(handle.api_client)


def _ready(pod):
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def build_log(core, name):
    text = core.read_namespaced_pod_log(name, ENV_NAMESPACE, container=contract.SUPERVISOR_CONTAINER_NAME)
    lines = [contract.parse_log_line(line) for line in text.splitlines()]
    assert lines
    assert all(line is not None for line in lines)
    return lines


def test_supervisor_pod_is_ready_only_after_startup_complete(core):
    since = list_version(core, ENV_NAMESPACE)
    core.create_namespaced_pod(ENV_NAMESPACE, cvm_pod("cvm", "ghcr.io/coderadmin/example-systemd:22.04"))
    revisions = watch_pod_until(core, "cvm", _ready, ENV_NAMESPACE, since)
    assert any(p.status.phase == "Running" and not _ready(p) for p in revisions)
    lines = build_log(core, "cvm")
    assert (lines[-1].type, lines[-1].output) == (contract.LOG_DONE, contract.STARTUP_COMPLETE)
    entrypoints = [contract.parse_entrypoint(line.output) for line in lines]
    assert contract.INIT_ENTRYPOINT in entrypoints
    assert revisions[-1].status.phase == "Running"


@pytest.mark.parametrize(
    ("image", "user", "message"),
    [
        (
            "registry.invalid/team/dev:1",
            "coder",
            f"pull image registry.invalid/team/dev:1: *: failed after {contract.PULL_ATTEMPTS} attempts",
        ),
        (
            "ghcr.io/coderadmin/example-no-user:1",
            "coder",
            'user "coder" does not exist in image ghcr.io/coderadmin/example-no-user:1',
        ),
        (
            "selfsigned.example.com/team/dev:1",
            "coder",
            "pull image selfsigned.example.com/team/dev:1: *x509: *",
        ),
    ],
)
def test_supervisor_failures_fail_the_pod_with_a_termination_message(core, image, user, message):
    core.create_namespaced_pod(ENV_NAMESPACE, cvm_pod("cvm", image, user))
    pod = watch_pod_until(core, "cvm", lambda p: p.status.phase == "Failed", ENV_NAMESPACE)[-1]
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (1, "Error")
    assert fnmatch.fnmatchcase(terminated.message, message)
    assert not _ready(pod)
    lines = build_log(core, "cvm")
    assert (lines[-1].type, lines[-1].output) == (contract.LOG_ERROR, terminated.message)


def test_supervisor_without_its_configuration_fails(core):
    body = cvm_pod("cvm", "ubuntu:22.04", downward=False)
    body["spec"]["containers"][0]["env"] = []
    core.create_namespaced_pod(ENV_NAMESPACE, body)
    pod = watch_pod_until(core, "cvm", lambda p: p.status.phase == "Failed", ENV_NAMESPACE)[-1]
    assert pod.status.container_statuses[0].state.terminated.message == (
        f"missing required environment variable {contract.ENV_INNER_IMAGE}"
    )


def test_runtimeclass_wrapper_announces_its_entrypoint(tmp_path):
    with running_profile("sysbox-nodes", tmp_path) as handle:
        api = client.CoreV1Api(handle.api_client)
        body = {
            "metadata": {"name": "rc"},
            "spec": {
                "runtimeClassName": "sysbox-runc",
                "containers": [
                    {
                        "name": contract.ENVIRONMENT_CONTAINER_NAME,
                        "image": "ghcr.io/coderadmin/example-systemd:22.04",
                        "command": contract.runtimeclass_wrapper_command(),
                    }
                ],
            },
        }
        api.create_namespaced_pod(ENV_NAMESPACE, body)
        pod = watch_pod_until(api, "rc", lambda p: p.status.phase == "Running", ENV_NAMESPACE)[-1]
        node = api.read_node(pod.spec.node_name)
        assert node.metadata.labels["sysbox-runtime"] == "running"
        text = api.read_namespaced_pod_log("rc", ENV_NAMESPACE)
        (line,) = [contract.parse_log_line(raw) for raw in text.splitlines()]
        assert line.type == contract.LOG_DONE
        assert contract.parse_entrypoint(line.output) == contract.INIT_ENTRYPOINT


def test_deleting_a_building_cvm_stops_its_build(core):
    core.create_namespaced_pod(ENV_NAMESPACE, cvm_pod("cvm", "ghcr.io/coderadmin/example-systemd:22.04"))
    watch_pod_until(core, "cvm", lambda p: p.status.phase == "Running", ENV_NAMESPACE)
    deleted = core.delete_namespaced_pod("cvm", ENV_NAMESPACE)
    assert deleted.metadata.deletion_grace_period_seconds == contract.INNER_STOP_TIMEOUT_SECONDS + 30

    def gone():
        try:
            core.read_namespaced_pod("cvm", ENV_NAMESPACE)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone)
    events = core.list_namespaced_event(ENV_NAMESPACE, field_selector="involvedObject.name=cvm").items
    assert "Stopping container supervisor" in {e.message for e in events}
