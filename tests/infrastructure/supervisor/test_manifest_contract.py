"""Contract between the CVM pod manifest (environments side) and the entrypoint: the pod sets
exactly the variables the entrypoint reads, with values it accepts, and mounts every path it uses.

The Downward API is resolved here the way the kubelet does it (limits.cpu with divisor 1m gives
integer millicores, limits.memory with divisor 1 gives bytes, both rounded up)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from kubernetes.utils import parse_quantity

from coderadmin.models import User
from environments import manifests
from environments.models import Environment, Image
from infrastructure.models import InfrastructureSettings
from infrastructure.supervisor import contract
from infrastructure.supervisor.config import CONFIG_ENV, load_config


def supervisor_pod(*, private: bool, command: list[str] | None = None, **infra: object) -> dict:
    settings = InfrastructureSettings(**infra)
    image = Image(repository="registry.example.com:5000/team/dev", username="coder", command=command)
    if private:
        image.registry_username = "robot"
        image.registry_password = "token"
    env = Environment(
        pk=7,
        owner=User(username="alice", handle="alice"),
        name="web",
        image=image,
        tag="1.0",
        cpu_millicores=1500,
        memory_mib=4096,
        disk_gib=20,
        cvm=True,
        cvm_backend="supervisor",
    )
    env.assign_kubernetes_names(settings)
    return manifests.pod(env, image, settings)


def resolve(container: dict) -> dict[str, str]:
    """The environment the kubelet would hand the supervisor."""
    limits = container["resources"]["limits"]
    resolved = {}
    for item in container["env"]:
        if "value" in item:
            resolved[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["resourceFieldRef"]
        assert ref["containerName"] == contract.SUPERVISOR_CONTAINER_NAME
        kind = ref["resource"].removeprefix("limits.")
        amount = parse_quantity(limits[kind]) / parse_quantity(ref["divisor"])
        resolved[item["name"]] = str(math.ceil(Decimal(amount)))
    return resolved


VARIANTS = [
    pytest.param({"private": True, "add_tun": True, "add_fuse": True}, id="private-tun-fuse"),
    pytest.param({"private": False, "command": ["/usr/bin/code-server"]}, id="public-command"),
    pytest.param({"private": False, "inner_bridge_cidr": "172.29.0.1/24"}, id="custom-bridge"),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_env_is_exactly_what_the_entrypoint_reads_and_accepts(variant):
    [container] = supervisor_pod(**variant)["spec"]["containers"]
    env = resolve(container)
    assert set(env) <= set(CONFIG_ENV)
    assert set(contract.REQUIRED_ENV) <= set(env)
    config = load_config(env)  # raises ConfigError with the reason on any rejected value
    assert config.cpu_millicores == 1500 and config.cpu_quota == 150000
    assert config.memory_bytes == 4096 * 1024**2
    assert config.mounts == ()  # the manifest repeats only the standard mounts
    assert config.add_tun is variant.get("add_tun", False)
    assert config.add_fuse is variant.get("add_fuse", False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_mounts_every_path_the_entrypoint_uses(variant):
    pod = supervisor_pod(**variant)
    [container] = pod["spec"]["containers"]
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    needed = {
        contract.HOST_MODULES_PATH,
        contract.HOST_USR_SRC_PATH,
        contract.SYSBOX_DATA_PATH,
        contract.OUTER_DOCKER_DATA_PATH,
        contract.RUN_PATH,
        *(source for source, _ in contract.standard_inner_mounts("coder")),
    }
    if variant["private"]:
        needed.add(contract.REGISTRY_AUTH_PATH)
    assert needed <= mounted
    assert contract.READY_MARKER_PATH.startswith(contract.RUN_PATH + "/")
    assert container["terminationMessagePath"] == contract.TERMINATION_LOG_PATH
    assert container["readinessProbe"]["exec"]["command"] == list(contract.READINESS_COMMAND)
    assert container["securityContext"] == {"privileged": True}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] > contract.INNER_STOP_TIMEOUT_SECONDS
