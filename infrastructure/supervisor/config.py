"""The supervisor's configuration: read from the environment the CVM pod manifest sets, validated
up front so that a bad value ends the pod at once with a clear reason instead of a half-built
environment. Standard library only: this module ships in the supervisor image.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from infrastructure.supervisor import contract

_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_USERNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGER = re.compile(r"^[0-9]+$")
# A bridge smaller than this leaves no room for the inner containers' addresses.
MAX_BRIDGE_PREFIX = 30


class ConfigError(ValueError):
    """Configuration the supervisor cannot start from; the message lists every reason."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("invalid supervisor configuration: " + "; ".join(reasons))


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False

    def volume_arg(self) -> str:
        """The value of ``docker run -v``."""
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class Config:
    image: str
    username: str
    hostname: str
    cpu_millicores: int
    memory_bytes: int
    mounts: tuple[Mount, ...] = ()
    add_tun: bool = False
    add_fuse: bool = False
    bridge_ip: str | None = None  # "--bip" value: the gateway address with its prefix
    inner_env: Mapping[str, str] = field(default_factory=dict)
    bootstrap_script: str | None = None
    inner_command: tuple[str, ...] | None = None

    @property
    def cpu_quota(self) -> int:
        """CFS quota per ``CPU_PERIOD`` microseconds: 1000 millicores is one full period."""
        return self.cpu_millicores * CPU_PERIOD // 1000

    def all_mounts(self) -> tuple[Mount, ...]:
        """The standard mounts (home, inner Docker and containers caches) followed by the extra ones."""
        standard = tuple(Mount(src, dst) for src, dst in contract.standard_inner_mounts(self.username))
        return standard + self.mounts


CPU_PERIOD = 100000
# Every variable load_config reads: a pod manifest should set these and no other CODERADMIN_ ones.
CONFIG_ENV = (
    *contract.REQUIRED_ENV,
    contract.ENV_INNER_MOUNTS,
    contract.ENV_ADD_TUN,
    contract.ENV_ADD_FUSE,
    contract.ENV_BRIDGE_CIDR,
    contract.ENV_INNER_ENV,
    contract.ENV_INNER_COMMAND,
    contract.ENV_BOOTSTRAP_SCRIPT,
)


def load_config(environ: Mapping[str, str]) -> Config:
    """Validate the environment; raises ConfigError naming every problem found."""
    reasons: list[str] = []

    def get(name: str) -> str:
        return environ.get(name, "").strip()

    for name in contract.REQUIRED_ENV:
        if not get(name):
            reasons.append(f"{name} is required")

    image = get(contract.ENV_INNER_IMAGE)
    if image and (image.startswith("-") or any(ch.isspace() for ch in image)):
        reasons.append(f"{contract.ENV_INNER_IMAGE} {image!r} is not an image reference")

    username = get(contract.ENV_INNER_USERNAME)
    if username and not _USERNAME.match(username):
        reasons.append(f"{contract.ENV_INNER_USERNAME} {username!r} is not a valid user name")

    hostname = get(contract.ENV_INNER_HOSTNAME)
    if hostname and not _valid_hostname(hostname):
        reasons.append(
            f"{contract.ENV_INNER_HOSTNAME} {hostname!r} is not a hostname "
            "(lowercase letters, digits, '-' and '.', at most 63 characters)"
        )

    cpu = _positive_int(get(contract.ENV_CPU_MILLICORES), contract.ENV_CPU_MILLICORES, "millicores", reasons)
    memory = _positive_int(get(contract.ENV_MEMORY_BYTES), contract.ENV_MEMORY_BYTES, "bytes", reasons)
    add_tun = _boolean(get(contract.ENV_ADD_TUN), contract.ENV_ADD_TUN, reasons)
    add_fuse = _boolean(get(contract.ENV_ADD_FUSE), contract.ENV_ADD_FUSE, reasons)
    mounts = _mounts(get(contract.ENV_INNER_MOUNTS), username, reasons)
    bridge_ip = _bridge(get(contract.ENV_BRIDGE_CIDR), reasons)
    inner_env = _inner_env(get(contract.ENV_INNER_ENV), reasons)
    inner_command = _inner_command(get(contract.ENV_INNER_COMMAND), reasons)
    bootstrap = environ.get(contract.ENV_BOOTSTRAP_SCRIPT, "")

    if reasons:
        raise ConfigError(reasons)
    assert cpu is not None and memory is not None
    return Config(
        image=image,
        username=username,
        hostname=hostname,
        cpu_millicores=cpu,
        memory_bytes=memory,
        mounts=mounts,
        add_tun=add_tun,
        add_fuse=add_fuse,
        bridge_ip=bridge_ip,
        inner_env=inner_env,
        bootstrap_script=bootstrap if bootstrap.strip() else None,
        inner_command=inner_command,
    )


def _valid_hostname(hostname: str) -> bool:
    return len(hostname) <= 63 and all(_HOST_LABEL.match(label) for label in hostname.split("."))


def _positive_int(value: str, name: str, unit: str, reasons: list[str]) -> int | None:
    if not value:
        return None
    if not _INTEGER.match(value) or int(value) <= 0:
        reasons.append(f"{name} must be a whole number of {unit} greater than 0, got {value!r}")
        return None
    return int(value)


def _boolean(value: str, name: str, reasons: list[str]) -> bool:
    lowered = value.lower()
    if lowered in contract.TRUE_VALUES:
        return True
    if lowered not in contract.FALSE_VALUES:
        reasons.append(f"{name} must be true or false, got {value!r}")
    return False


def _mounts(value: str, username: str, reasons: list[str]) -> tuple[Mount, ...]:
    """Parse ``src:dst[:ro]`` entries; the standard mounts may be repeated identically, never changed."""
    if not value:
        return ()
    standard = {dst: src for src, dst in contract.standard_inner_mounts(username)}
    mounts: list[Mount] = []
    targets: set[str] = set(standard)
    name = contract.ENV_INNER_MOUNTS
    for entry in value.split(","):
        parts = entry.strip().split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "ro"):
            reasons.append(f"{name} entry {entry.strip()!r} must be src:dst or src:dst:ro")
            continue
        source, target = parts[0], parts[1]
        bad = [path for path in (source, target) if not _clean_absolute(path)]
        if bad:
            reasons.append(f"{name} entry {entry.strip()!r}: {bad[0]!r} is not a normalised absolute path")
            continue
        if standard.get(target) == source and len(parts) == 2:
            continue
        if target in targets:
            reasons.append(f"{name} entry {entry.strip()!r}: {target} is mounted twice")
            continue
        targets.add(target)
        mounts.append(Mount(source, target, read_only=len(parts) == 3))
    return tuple(mounts)


def _clean_absolute(path: str) -> bool:
    return path.startswith("/") and posixpath.normpath(path) == path


def _bridge(value: str, reasons: list[str]) -> str | None:
    """Accept a network (172.30.0.0/16) or a gateway address (172.30.0.1/16); dockerd wants the latter."""
    if not value:
        return None
    name = contract.ENV_BRIDGE_CIDR
    try:
        interface = ipaddress.IPv4Interface(value)
    except ValueError:
        reasons.append(f"{name} {value!r} is not an IPv4 CIDR such as 172.30.0.1/16")
        return None
    network = interface.network
    if network.prefixlen > MAX_BRIDGE_PREFIX:
        reasons.append(f"{name} {value!r} is too small: use a prefix of /{MAX_BRIDGE_PREFIX} or shorter")
        return None
    address = interface.ip
    if address == network.network_address:
        address = network.network_address + 1
    if address == network.broadcast_address:
        reasons.append(f"{name} {value!r} names the broadcast address, not a gateway")
        return None
    return f"{address}/{network.prefixlen}"


def _inner_env(value: str, reasons: list[str]) -> dict[str, str]:
    if not value:
        return {}
    name = contract.ENV_INNER_ENV
    try:
        data = json.loads(value)
    except ValueError:
        reasons.append(f"{name} is not valid JSON")
        return {}
    if not isinstance(data, dict):
        reasons.append(f"{name} must be a JSON object of strings")
        return {}
    bad_keys = sorted(key for key in data if not _ENV_NAME.match(key))
    bad_values = sorted(key for key, item in data.items() if not isinstance(item, str))
    if bad_keys:
        reasons.append(f"{name} has invalid variable names: {', '.join(map(repr, bad_keys))}")
    if bad_values:
        reasons.append(f"{name} values must be strings: {', '.join(map(repr, bad_values))}")
    return {} if bad_keys or bad_values else dict(data)


def _inner_command(value: str, reasons: list[str]) -> tuple[str, ...] | None:
    if not value:
        return None
    name = contract.ENV_INNER_COMMAND
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, list) or not data or not all(isinstance(item, str) and item for item in data):
        reasons.append(f"{name} must be a non-empty JSON list of strings")
        return None
    return tuple(data)
