"""The supervisor contract: the names shared by the CVM pod manifests, the simulated cluster's
supervisor and the real supervising container's entrypoint.

This module is the single source of these names. It is standard library only, because the
supervisor image ships it next to its entrypoint. Never restate a name from here elsewhere:
import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

# --- Environment variables the supervisor reads -------------------------------------------------
ENV_PREFIX = "CODERADMIN_"
ENV_INNER_IMAGE = "CODERADMIN_INNER_IMAGE"  # full reference, e.g. registry.example/team/dev:1.0
ENV_INNER_USERNAME = "CODERADMIN_INNER_USERNAME"  # account that must exist in the image
ENV_INNER_HOSTNAME = "CODERADMIN_INNER_HOSTNAME"
# Comma-separated "src:dst" or "src:dst:ro"; src is a path inside the supervising container.
ENV_INNER_MOUNTS = "CODERADMIN_INNER_MOUNTS"
ENV_CPU_MILLICORES = "CODERADMIN_CPU_MILLICORES"  # Downward API limits.cpu, divisor 1m
ENV_MEMORY_BYTES = "CODERADMIN_MEMORY_BYTES"  # Downward API limits.memory, divisor 1
ENV_ADD_TUN = "CODERADMIN_ADD_TUN"  # "true" / "false"
ENV_ADD_FUSE = "CODERADMIN_ADD_FUSE"  # "true" / "false"
ENV_BRIDGE_CIDR = "CODERADMIN_DOCKER_BRIDGE_CIDR"  # inner Docker bridge network, e.g. 172.30.0.1/16
ENV_INNER_ENV = "CODERADMIN_INNER_ENV"  # JSON object of extra environment for the inner container
ENV_BOOTSTRAP_SCRIPT = "CODERADMIN_BOOTSTRAP_SCRIPT"  # optional shell script run once inside
ENV_INNER_COMMAND = "CODERADMIN_INNER_COMMAND"  # optional JSON list: long-running command of the image

REQUIRED_ENV = (
    ENV_INNER_IMAGE,
    ENV_INNER_USERNAME,
    ENV_INNER_HOSTNAME,
    ENV_CPU_MILLICORES,
    ENV_MEMORY_BYTES,
)
TRUE_VALUES = frozenset({"true", "1", "yes"})
FALSE_VALUES = frozenset({"false", "0", "no", ""})

# --- Container and volume names in the CVM pod -------------------------------------------------
SUPERVISOR_CONTAINER_NAME = "supervisor"
INNER_CONTAINER_NAME = "workspace"  # the name of the inner container inside the supervisor's Docker
ENVIRONMENT_CONTAINER_NAME = "workspace"  # standard and RuntimeClass pods: the one container

VOLUME_DATA = "data"  # the environment's persistent volume claim
VOLUME_HOST_MODULES = "host-modules"
VOLUME_HOST_USR_SRC = "host-usr-src"
VOLUME_SYSBOX = "sysbox-data"
VOLUME_REGISTRY_AUTH = "registry-auth"
VOLUME_RUN = "coderadmin-run"

# --- Mount paths inside the supervising container ---------------------------------------------
HOST_MODULES_PATH = "/lib/modules"  # hostPath, read-only
HOST_USR_SRC_PATH = "/usr/src"  # hostPath, read-only
SYSBOX_DATA_PATH = "/var/lib/sysbox"  # emptyDir: must not be overlayfs
OUTER_DOCKER_DATA_PATH = "/var/lib/docker"  # on the volume claim, subPath below
VOLUME_ROOT_PATH = "/var/lib/coderadmin"
HOME_SOURCE_PATH = "/var/lib/coderadmin/home"  # becomes /home/<user> inside
INNER_DOCKER_SOURCE_PATH = "/var/lib/coderadmin/inner-docker"  # becomes /var/lib/docker inside
INNER_CONTAINERS_SOURCE_PATH = "/var/lib/coderadmin/inner-containers"  # becomes /var/lib/containers
REGISTRY_AUTH_PATH = "/var/run/coderadmin/registry"  # Secret with a Docker config.json
REGISTRY_AUTH_FILE = "config.json"
RUN_PATH = "/var/run/coderadmin"  # emptyDir shared with the readiness probe

# subPaths of the volume claim, mounted at the paths above.
SUBPATH_HOME = "home"
SUBPATH_OUTER_DOCKER = "outer-docker"
SUBPATH_INNER_DOCKER = "inner-docker"
SUBPATH_INNER_CONTAINERS = "inner-containers"

# Mount targets inside the inner container.
INNER_DOCKER_TARGET = "/var/lib/docker"
INNER_CONTAINERS_TARGET = "/var/lib/containers"


def inner_home_target(username: str) -> str:
    return f"/home/{username}"


def standard_inner_mounts(username: str) -> tuple[tuple[str, str], ...]:
    """(source, target) pairs the supervisor always mounts into the inner container.

    ENV_INNER_MOUNTS carries extra mounts only; repeating one of these identically is tolerated.
    """
    return (
        (HOME_SOURCE_PATH, inner_home_target(username)),
        (INNER_DOCKER_SOURCE_PATH, INNER_DOCKER_TARGET),
        (INNER_CONTAINERS_SOURCE_PATH, INNER_CONTAINERS_TARGET),
    )


# --- Readiness ------------------------------------------------------------------------------
READY_MARKER_PATH = "/var/run/coderadmin/ready"  # written only after "startup complete"
READINESS_COMMAND = ("cat", READY_MARKER_PATH)  # exec readinessProbe
TERMINATION_LOG_PATH = "/dev/termination-log"

# --- Entrypoints ----------------------------------------------------------------------------
INIT_ENTRYPOINT = "/sbin/init"
KEEPALIVE_ENTRYPOINT = "keep-alive"  # the name stored when the image has no /sbin/init
KEEPALIVE_COMMAND = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")
# The user-namespace offset for file ownership on mounts; it must never change once data exists.
USERNS_UID_OFFSET = 100000
# The supervisor's graceful stop of the inner container. The pod's grace period (default 90 s)
# must cover it plus stopping dockerd and sysbox afterwards, hence 75 and not the full 90.
INNER_STOP_TIMEOUT_SECONDS = 75
# Pull retries of the inner image.
PULL_ATTEMPTS = 10

# --- Build log: JSON lines on the supervisor's stdout ---------------------------------------
LOG_INFO = "info"
LOG_ERROR = "error"
LOG_DONE = "done"
LOG_TYPES = frozenset({LOG_INFO, LOG_ERROR, LOG_DONE})
STARTUP_COMPLETE = "startup complete"
ENTRYPOINT_PREFIX = "entrypoint: "  # "entrypoint: /sbin/init" or "entrypoint: keep-alive"


@dataclass(frozen=True)
class LogLine:
    time: datetime
    type: str
    output: str


def format_log_line(type_: str, output: str, time: datetime | None = None) -> str:
    """One build-log line: a JSON object with ``time`` (RFC 3339, UTC), ``type`` and ``output``."""
    if type_ not in LOG_TYPES:
        raise ValueError(f"unknown build-log type {type_!r}")
    stamp = (time or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": stamp, "type": type_, "output": output}, ensure_ascii=False)


def parse_log_line(line: str) -> LogLine | None:
    """Parse one build-log line; None for anything that is not one (other output is ignored)."""
    try:
        data = json.loads(line)
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    type_, output, stamp = data.get("type"), data.get("output"), data.get("time")
    if type_ not in LOG_TYPES or not isinstance(output, str) or not isinstance(stamp, str):
        return None
    try:
        time = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return LogLine(time=time, type=type_, output=output)


def entrypoint_line(entrypoint: str) -> str:
    """The build-log message naming the chosen entrypoint (INIT_ENTRYPOINT or KEEPALIVE_ENTRYPOINT)."""
    return f"{ENTRYPOINT_PREFIX}{entrypoint}"


def parse_entrypoint(output: str) -> str | None:
    if output.startswith(ENTRYPOINT_PREFIX):
        return output[len(ENTRYPOINT_PREFIX) :].strip() or None
    return None


# --- RuntimeClass backend: the wrapper command of the environment container --------------------
# No supervisor runs there and nothing can inspect the image first, so a small shell wrapper
# chooses: /sbin/init when it is executable, else the keep-alive. It prints its choice as a
# build-log line so the watcher can store the entrypoint.
def runtimeclass_wrapper_command() -> list[str]:
    def announce(entrypoint: str) -> str:
        line = f'{{"time":"%s","type":"{LOG_DONE}","output":"{entrypoint_line(entrypoint)}"}}\\n'
        return f"printf '{line}' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""

    script = (
        f"if [ -x {INIT_ENTRYPOINT} ]; then {announce(INIT_ENTRYPOINT)}; exec {INIT_ENTRYPOINT}; "
        f"else {announce(KEEPALIVE_ENTRYPOINT)}; {KEEPALIVE_COMMAND[2]}; fi"
    )
    return ["/bin/sh", "-c", script]
