"""The supervising container, simulated: what the real supervisor would log and do for a pod.

The kubelet only pulls the supervisor image; the supervisor itself pulls the user's (inner) image,
inspects it, chooses the entrypoint and starts it. The simulator plays that part from the pod's
configuration, read exactly as the real supervisor reads it — the environment variables and
mounts named in ``infrastructure.supervisor.contract`` — and from the profile's image behaviours.
The result is a timeline of build-log lines (the real JSON-lines format) and an outcome: ready
(the ready marker is written, so the readiness probe passes) or failed with the exit code and the
termination message the real supervisor writes to ``/dev/termination-log``.

Also here: the output of the RuntimeClass backend's wrapper command, and the resolution of a
container's environment (values, Downward API, Secret and ConfigMap references) that the kubelet
shares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from infrastructure.supervisor import contract

from .profiles import (
    PULL_CERTIFICATE_ERROR,
    PULL_INVALID,
    PULL_UNPULLABLE,
    ImageBehaviour,
    ImageCatalog,
    Timing,
    valid_reference,
)
from .scheduler import quantity

# (kind "Secret" | "ConfigMap", namespace, name) -> the object's data, or None when it does not exist.
DataLookup = Callable[[str, str, str], dict[str, str] | None]
PULL_PROGRESS_STEPS = 4
EXIT_FAILURE = 1


class EnvError(Exception):
    """A container's environment cannot be built; the message is the kubelet's own wording."""


@dataclass(frozen=True)
class SupervisorConfig:
    """The supervisor's configuration, as read from its container."""

    inner_image: str
    username: str
    hostname: str
    cpu_millicores: int
    memory_bytes: int
    mounts: tuple[tuple[str, str, bool], ...] = ()
    add_tun: bool = False
    add_fuse: bool = False
    bridge_cidr: str = ""
    inner_env: dict[str, str] = field(default_factory=dict)
    bootstrap_script: str = ""
    inner_command: tuple[str, ...] = ()
    registry_auth: bool = False


@dataclass(frozen=True)
class Step:
    """One build-log line, ``after`` simulated seconds after the previous step."""

    after: float
    type: str
    output: str


@dataclass(frozen=True)
class SupervisorRun:
    steps: tuple[Step, ...]
    ready: bool  # the ready marker exists once the last step is written
    exit_code: int | None = None  # None: the supervisor keeps running
    termination_message: str = ""
    entrypoint: str | None = None

    def lines(self, start: datetime) -> list[str]:
        """The build log as the supervisor would have written it, starting at ``start``."""
        lines, when = [], start
        for step in self.steps:
            when += timedelta(seconds=step.after)
            lines.append(contract.format_log_line(step.type, step.output, when))
        return lines

    @property
    def duration(self) -> float:
        return sum(step.after for step in self.steps)


# --- Container environment -------------------------------------------------------------------


def _field_ref(pod: dict[str, Any], path: str) -> str:
    metadata, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if path in simple:
        return simple[path]
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(f"{prefix}['") and path.endswith("']"):
            return (metadata.get(source) or {}).get(path[len(prefix) + 2 : -2], "")
    return ""


def _resource_ref(
    pod: dict[str, Any], container: dict[str, Any], ref: dict[str, Any], allocatable: dict[str, Any]
) -> str:
    name = ref.get("containerName") or container.get("name")
    target = next(
        (c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == name), container
    )
    resources = target.get("resources") or {}
    section, _, resource = ref.get("resource", "").partition(".")
    value = (resources.get(section) or {}).get(resource)
    if value is None:
        # Unset limits resolve to the node's allocatable; unset requests to zero.
        value = allocatable.get(resource, 0) if section == "limits" else 0
    divisor = quantity(ref.get("divisor") or "1") or Decimal(1)
    return str(math.ceil(quantity(value) / divisor))


def _keyed(kind: str, namespace: str, selector: dict[str, Any], lookup: DataLookup) -> str | None:
    name, key = selector.get("name", ""), selector.get("key", "")
    data = lookup(kind, namespace, name)
    if data is None:
        if selector.get("optional"):
            return None
        raise EnvError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if selector.get("optional"):
            return None
        raise EnvError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    lookup: DataLookup | None = None,
    allocatable: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment the kubelet would give ``container``; raises EnvError as the kubelet refuses."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    find: DataLookup = lookup or (lambda kind, ns, name: None)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = find(kind, namespace, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            env.update({f"{source.get('prefix', '')}{name}": value for name, value in data.items()})
    for item in container.get("env") or []:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = str(item.get("value", ""))
            continue
        value: str | None
        if "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            value = _resource_ref(pod, container, source["resourceFieldRef"], allocatable or {})
        elif "secretKeyRef" in source:
            value = _keyed("Secret", namespace, source["secretKeyRef"], find)
        elif "configMapKeyRef" in source:
            value = _keyed("ConfigMap", namespace, source["configMapKeyRef"], find)
        else:
            value = ""
        if value is not None:
            env[item["name"]] = value
    return env


# --- Reading the supervisor's configuration ----------------------------------------------------


def is_supervisor(container: dict[str, Any], catalog: ImageCatalog) -> bool:
    """The product's supervising container: by its image, or by the configuration it carries."""
    if catalog.lookup(container.get("image", "")).supervisor:
        return True
    return any(item.get("name") == contract.ENV_INNER_IMAGE for item in container.get("env") or [])


def _flag(env: dict[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in contract.TRUE_VALUES:
        return True
    if value in contract.FALSE_VALUES:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _mounts(value: str) -> tuple[tuple[str, str, bool], ...]:
    mounts = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or (len(parts) == 3 and parts[2] != "ro"):
            raise ValueError(f"{contract.ENV_INNER_MOUNTS}: invalid mount {item!r}, expected src:dst[:ro]")
        mounts.append((parts[0], parts[1], len(parts) == 3))
    return tuple(mounts)


def read_config(container: dict[str, Any], env: dict[str, str]) -> SupervisorConfig:
    """Parse the supervisor's configuration; ValueError with the supervisor's message when invalid."""
    for name in contract.REQUIRED_ENV:
        if not env.get(name):
            raise ValueError(f"missing required environment variable {name}")
    try:
        cpu, memory = int(env[contract.ENV_CPU_MILLICORES]), int(env[contract.ENV_MEMORY_BYTES])
    except ValueError as exc:
        raise ValueError(
            f"{contract.ENV_CPU_MILLICORES} and {contract.ENV_MEMORY_BYTES} must be integers"
        ) from exc
    inner_env: dict[str, str] = {}
    if env.get(contract.ENV_INNER_ENV):
        try:
            parsed = json.loads(env[contract.ENV_INNER_ENV])
        except ValueError as exc:
            raise ValueError(f"{contract.ENV_INNER_ENV} is not a JSON object") from exc
        if not isinstance(parsed, dict):
            raise ValueError(f"{contract.ENV_INNER_ENV} is not a JSON object")
        inner_env = {str(key): str(value) for key, value in parsed.items()}
    command: tuple[str, ...] = ()
    if env.get(contract.ENV_INNER_COMMAND):
        try:
            parsed_command = json.loads(env[contract.ENV_INNER_COMMAND])
        except ValueError as exc:
            raise ValueError(f"{contract.ENV_INNER_COMMAND} is not a JSON list of strings") from exc
        if not isinstance(parsed_command, list) or not all(isinstance(arg, str) for arg in parsed_command):
            raise ValueError(f"{contract.ENV_INNER_COMMAND} is not a JSON list of strings")
        command = tuple(parsed_command)
    paths = {mount.get("mountPath") for mount in container.get("volumeMounts") or []}
    return SupervisorConfig(
        inner_image=env[contract.ENV_INNER_IMAGE],
        username=env[contract.ENV_INNER_USERNAME],
        hostname=env[contract.ENV_INNER_HOSTNAME],
        cpu_millicores=cpu,
        memory_bytes=memory,
        mounts=_mounts(env.get(contract.ENV_INNER_MOUNTS, "")),
        add_tun=_flag(env, contract.ENV_ADD_TUN),
        add_fuse=_flag(env, contract.ENV_ADD_FUSE),
        bridge_cidr=env.get(contract.ENV_BRIDGE_CIDR, ""),
        inner_env=inner_env,
        bootstrap_script=env.get(contract.ENV_BOOTSTRAP_SCRIPT, ""),
        inner_command=command,
        registry_auth=contract.REGISTRY_AUTH_PATH in paths,
    )


# --- The timeline ----------------------------------------------------------------------------------


def _failed(steps: list[Step], message: str, after: float = 0.0) -> SupervisorRun:
    steps.append(Step(after, contract.LOG_ERROR, message))
    return SupervisorRun(tuple(steps), ready=False, exit_code=EXIT_FAILURE, termination_message=message)


def _registry(reference: str) -> str:
    first = reference.split("/", 1)[0]
    if "/" in reference and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


def _pull_error(reference: str, behaviour: ImageBehaviour) -> str:
    registry = _registry(reference)
    if behaviour.pull == PULL_CERTIFICATE_ERROR:
        return (
            f'Error response from daemon: Get "https://{registry}/v2/": tls: failed to verify certificate: '
            "x509: certificate signed by unknown authority"
        )
    if registry.endswith(".invalid"):
        return (
            f'Error response from daemon: Get "https://{registry}/v2/": dial tcp: lookup {registry}: '
            "no such host"
        )
    name = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    return f"Error response from daemon: manifest for {reference} not found: manifest unknown: {name}"


def _progress(reference: str, behaviour: ImageBehaviour) -> list[Step]:
    total_mb = behaviour.size / 1_000_000
    interval = behaviour.pull_seconds / PULL_PROGRESS_STEPS
    return [
        Step(
            interval,
            contract.LOG_INFO,
            f"pull {reference}: {total_mb * step / PULL_PROGRESS_STEPS:.1f}MB / {total_mb:.1f}MB",
        )
        for step in range(1, PULL_PROGRESS_STEPS + 1)
    ]


def simulate_supervisor(config: SupervisorConfig, catalog: ImageCatalog, timing: Timing) -> SupervisorRun:
    """The build log and outcome of the real supervisor for this configuration and image."""
    image = config.inner_image
    behaviour = catalog.lookup(image)
    steps = [
        Step(0.0, contract.LOG_INFO, f"preparing environment {config.hostname}"),
        Step(timing.supervisor_daemon_start / 2, contract.LOG_INFO, "starting sysbox-mgr and sysbox-fs"),
        Step(timing.supervisor_daemon_start / 2, contract.LOG_INFO, "starting docker daemon"),
    ]
    if config.registry_auth:
        path = f"{contract.REGISTRY_AUTH_PATH}/{contract.REGISTRY_AUTH_FILE}"
        steps.append(Step(0.0, contract.LOG_INFO, f"using registry credentials from {path}"))
    steps.append(Step(0.0, contract.LOG_INFO, f"pulling image {image}"))
    if behaviour.pull == PULL_INVALID or not valid_reference(image):
        return _failed(steps, f"pull image {image}: invalid reference format")
    if behaviour.pull == PULL_CERTIFICATE_ERROR:
        return _failed(steps, f"pull image {image}: {_pull_error(image, behaviour)}", after=1.0)
    if behaviour.pull == PULL_UNPULLABLE:
        error = _pull_error(image, behaviour)
        for attempt in range(1, contract.PULL_ATTEMPTS):
            steps.append(
                Step(
                    timing.supervisor_pull_retry,
                    contract.LOG_ERROR,
                    f"pull image {image}: attempt {attempt}/{contract.PULL_ATTEMPTS} failed: {error}",
                )
            )
        return _failed(
            steps,
            f"pull image {image}: {error}: failed after {contract.PULL_ATTEMPTS} attempts",
            after=timing.supervisor_pull_retry,
        )
    steps += _progress(image, behaviour)
    steps.append(Step(0.0, contract.LOG_INFO, f"pulled image {image}"))
    steps.append(Step(timing.supervisor_inspect, contract.LOG_INFO, f"inspecting image {image}"))
    if config.username not in behaviour.users:
        return _failed(steps, f'user "{config.username}" does not exist in image {image}')
    entrypoint = contract.INIT_ENTRYPOINT if behaviour.has_init else contract.KEEPALIVE_ENTRYPOINT
    steps.append(Step(0.0, contract.LOG_INFO, contract.entrypoint_line(entrypoint)))
    steps.append(
        Step(0.0, contract.LOG_INFO, f"creating container {contract.INNER_CONTAINER_NAME} from {image}")
    )
    steps.append(Step(timing.supervisor_inner_start, contract.LOG_INFO, "starting inner container"))
    if behaviour.crash:
        detail = f": {behaviour.message}" if behaviour.message else ""
        run = _failed(
            steps,
            f"inner container exited with code {behaviour.exit_code}{detail}",
            after=timing.container_start,
        )
        return SupervisorRun(run.steps, False, behaviour.exit_code, run.termination_message, entrypoint)
    if config.bootstrap_script:
        steps.append(Step(timing.container_start, contract.LOG_INFO, "running bootstrap script"))
    steps.append(Step(timing.container_start, contract.LOG_DONE, contract.STARTUP_COMPLETE))
    return SupervisorRun(tuple(steps), ready=True, entrypoint=entrypoint)


def simulate_pod_supervisor(
    container: dict[str, Any], env: dict[str, str], catalog: ImageCatalog, timing: Timing
) -> SupervisorRun:
    """Read the configuration and play the supervisor; bad configuration fails as the real one does."""
    try:
        config = read_config(container, env)
    except ValueError as exc:
        return _failed([], str(exc))
    return simulate_supervisor(config, catalog, timing)


# --- RuntimeClass backend ------------------------------------------------------------------------


def is_wrapper(container: dict[str, Any]) -> bool:
    """The container runs the RuntimeClass backend's entrypoint-choosing wrapper."""
    command = list(container.get("command") or []) + list(container.get("args") or [])
    return command == contract.runtimeclass_wrapper_command()


def wrapper_output(behaviour: ImageBehaviour, when: datetime) -> tuple[str, str]:
    """The wrapper's one line (its own printf layout) and the entrypoint it chose."""
    entrypoint = contract.INIT_ENTRYPOINT if behaviour.has_init else contract.KEEPALIVE_ENTRYPOINT
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    output = contract.entrypoint_line(entrypoint)
    return f'{{"time":"{stamp}","type":"{contract.LOG_DONE}","output":"{output}"}}', entrypoint
