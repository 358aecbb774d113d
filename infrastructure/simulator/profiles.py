"""Cluster profiles: the YAML files that say what the simulated cluster looks like.

A profile lists nodes (labels, taints, allocatable resources, ``nodeInfo``), namespaces with their
labels, any other cluster objects as plain manifests (storage classes, runtime classes, webhook
configurations, quotas, RBAC), and *image behaviours*: what happens when the kubelet, or the
simulated supervisor, pulls and runs an image. ``read_profile`` turns a profile into plain object
dicts and an ``ImageCatalog`` without touching any cluster, so it is testable on its own;
``load_profile`` creates those objects in a running simulated cluster and starts its kubelet.

Shipped profiles live in ``profiles/<name>.yaml`` next to this module; a path to any YAML file of
the same shape works too.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import re
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .clock import Clock
from .errors import APIError
from .resources import by_api_version_kind

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
# Image behaviours every profile shares (the product's example images, the supervisor image, the
# classic failure cases); a profile's own entries come first and so override them.
SHARED_IMAGES = PROFILE_DIR / "_images.yaml"

PULL_OK = "ok"
PULL_UNPULLABLE = "unpullable"  # every attempt fails (missing tag, unreachable registry)
PULL_INVALID = "invalid"  # the reference does not parse
PULL_CERTIFICATE_ERROR = "certificate-error"  # the registry's TLS certificate is not trusted
PULL_OUTCOMES = frozenset({PULL_OK, PULL_UNPULLABLE, PULL_INVALID, PULL_CERTIFICATE_ERROR})

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

_TOP_LEVEL_KEYS = frozenset({"description", "nodes", "namespaces", "objects", "images", "timing"})
_NODE_KEYS = frozenset(
    {
        "name",
        "labels",
        "annotations",
        "taints",
        "unschedulable",
        "ready",
        "allocatable",
        "capacity",
        "nodeInfo",
    }
)
_IMAGE_KEYS = frozenset(
    {
        "match",
        "pull",
        "crash",
        "exit_code",
        "message",
        "has_init",
        "users",
        "pull_seconds",
        "size",
        "supervisor",
    }
)


# The reference grammar of distribution/reference, enough to refuse what containerd refuses.
_REFERENCE = re.compile(
    r"^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


def valid_reference(image: str) -> bool:
    return bool(image) and bool(_REFERENCE.match(image))


class ProfileError(ValueError):
    """A profile that cannot be read: the message names the file and the offending entry."""


@dataclass(frozen=True)
class ImageBehaviour:
    """What pulling and running one image does, in the kubelet and in the simulated supervisor."""

    match: str = "*"
    pull: str = PULL_OK
    crash: bool = False  # the main process exits soon after it starts
    exit_code: int = 1
    message: str = ""  # what a crashing process writes to its termination log
    has_init: bool = False  # /sbin/init is an executable in the image
    users: tuple[str, ...] = ("root",)  # accounts in the image's /etc/passwd
    pull_seconds: float = 3.0
    size: int = 200 * 1024 * 1024  # bytes, shown in the pull progress
    supervisor: bool = False  # the product's supervising container image

    def matches(self, reference: str) -> bool:
        return fnmatch.fnmatchcase(reference, self.match)


@dataclass(frozen=True)
class ImageCatalog:
    """Image behaviours, first match wins; images nothing matches pull and run fine."""

    behaviours: tuple[ImageBehaviour, ...] = ()
    default: ImageBehaviour = field(default_factory=ImageBehaviour)

    def lookup(self, reference: str) -> ImageBehaviour:
        for behaviour in self.behaviours:
            if behaviour.matches(reference):
                return behaviour
        return replace(self.default, match=reference)


@dataclass(frozen=True)
class Timing:
    """Durations in simulated seconds (the clock scales them)."""

    schedule: float = 0.5
    volume_attach: float = 2.0
    container_start: float = 1.0
    image_pull_backoff: float = 10.0  # first back-off; it doubles up to the kubelet's 300 s cap
    crash_backoff: float = 10.0
    supervisor_daemon_start: float = 3.0
    supervisor_inspect: float = 2.0
    supervisor_inner_start: float = 4.0
    supervisor_pull_retry: float = 2.0
    stop_seconds: float = 2.0  # how long containers take to exit after SIGTERM, within the grace period
    supervisor_stop: float = 15.0  # the supervisor stops the inner container gracefully first
    mount_retry: float = 10.0  # the kubelet retries a failed mount (and reports it again) this often


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    objects: tuple[dict[str, Any], ...]  # in creation order
    images: ImageCatalog
    timing: Timing

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the product."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml") if not path.stem.startswith("_"))


def profile_path(name: str) -> Path:
    """The file of a shipped profile by name, or the given path when it names a YAML file."""
    is_file = name.endswith((".yaml", ".yml")) or "/" in name
    path = Path(name) if is_file else PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ProfileError(
            f"unknown cluster profile {name!r}; shipped profiles: {', '.join(available_profiles())}"
        )
    return path


def read_profile(name: str) -> Profile:
    """Parse a profile into plain Kubernetes objects and image behaviours (no cluster involved)."""
    path = profile_path(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_profile(path.stem, data, source=str(path))


def parse_profile(name: str, data: Any, source: str = "<profile>") -> Profile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a mapping")
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise ProfileError(f"{source}: unknown keys {sorted(unknown)}")
    namespaces = [_namespace(entry, source) for entry in _list(data, "namespaces", source)]
    nodes = [_node(entry, index, source) for index, entry in enumerate(_list(data, "nodes", source))]
    others = [_manifest(entry, source) for entry in _list(data, "objects", source)]
    cluster_scoped = [obj for obj in others if "namespace" not in obj["metadata"]]
    namespaced = [obj for obj in others if "namespace" in obj["metadata"]]
    entries = _list(data, "images", source) + _shared_images()
    images = ImageCatalog(tuple(_image(entry, source) for entry in entries))
    timing = _timing(data.get("timing") or {}, source)
    return Profile(
        name=name,
        description=str(data.get("description", "")).strip(),
        objects=tuple(namespaces + cluster_scoped + nodes + namespaced),
        images=images,
        timing=timing,
    )


def _shared_images() -> list[Any]:
    data = yaml.safe_load(SHARED_IMAGES.read_text(encoding="utf-8")) or {}
    return _list(data, "images", str(SHARED_IMAGES))


def _list(data: dict[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProfileError(f"{source}: {key} must be a list")
    return value


def _namespace(entry: Any, source: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProfileError(f"{source}: each namespace needs a name")
    metadata: dict[str, Any] = {"name": entry["name"]}
    labels = {"kubernetes.io/metadata.name": entry["name"], **_strings(entry.get("labels"), source)}
    metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _strings(value: Any, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProfileError(f"{source}: labels and annotations are mappings")
    return {str(key): str(item) for key, item in value.items()}


def _node(entry: Any, index: int, source: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProfileError(f"{source}: each node needs a name")
    name = entry["name"]
    unknown = set(entry) - _NODE_KEYS
    if unknown:
        raise ProfileError(f"{source}: node {name}: unknown keys {sorted(unknown)}")
    info = entry.get("nodeInfo") or {}
    for key in ("osImage", "kernelVersion", "kubeletVersion", "containerRuntimeVersion"):
        if not isinstance(info.get(key), str):
            raise ProfileError(f"{source}: node {name}: nodeInfo.{key} is required")
    allocatable = {key: str(value) for key, value in (entry.get("allocatable") or {}).items()}
    for key in ("cpu", "memory", "pods"):
        if key not in allocatable:
            raise ProfileError(f"{source}: node {name}: allocatable.{key} is required")
    capacity = {**allocatable, **{key: str(value) for key, value in (entry.get("capacity") or {}).items()}}
    ready = bool(entry.get("ready", True))
    unschedulable = bool(entry.get("unschedulable", False))
    taints = [dict(taint) for taint in entry.get("taints") or []]
    for taint in taints:
        if "key" not in taint or taint.get("effect") not in {"NoSchedule", "PreferNoSchedule", "NoExecute"}:
            raise ProfileError(f"{source}: node {name}: a taint needs a key and a valid effect")
    # The node lifecycle controller taints nodes that are not ready or cordoned.
    if not ready:
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    if unschedulable:
        taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        **_strings(entry.get("labels"), source),
    }
    spec: dict[str, Any] = {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    digest = hashlib.sha256(name.encode()).hexdigest()
    node_info = {
        "architecture": "amd64",
        "operatingSystem": "linux",
        "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"boot.{name}")),
        "machineID": digest[:32],
        "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "kubeProxyVersion": info["kubeletVersion"],
        **{key: str(value) for key, value in info.items()},
    }
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    annotations = _strings(entry.get("annotations"), source)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": node_conditions(ready),
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info,
        },
    }


def node_conditions(ready: bool) -> list[dict[str, str]]:
    """The conditions a kubelet reports; timestamps are filled in when the node is stored."""
    pressure = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    conditions = [
        {"type": kind, "status": "False", "reason": reason, "message": message}
        for kind, reason, message in pressure
    ]
    if ready:
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        )
    else:
        conditions.append(
            {
                "type": "Ready",
                "status": "False",
                "reason": "KubeletNotReady",
                "message": "container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: "
                "cni plugin not initialized",
            }
        )
    return conditions


def _manifest(entry: Any, source: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ProfileError(f"{source}: each object is a manifest mapping")
    metadata = entry.get("metadata")
    if not entry.get("apiVersion") or not entry.get("kind") or not isinstance(metadata, dict):
        raise ProfileError(f"{source}: each object needs apiVersion, kind and metadata")
    if not metadata.get("name"):
        raise ProfileError(f"{source}: a {entry['kind']} needs metadata.name")
    return entry


def _image(entry: Any, source: str) -> ImageBehaviour:
    if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
        raise ProfileError(f"{source}: each image behaviour needs a match pattern")
    unknown = set(entry) - _IMAGE_KEYS
    if unknown:
        raise ProfileError(f"{source}: image {entry['match']}: unknown keys {sorted(unknown)}")
    pull = entry.get("pull", PULL_OK)
    if pull not in PULL_OUTCOMES:
        raise ProfileError(f"{source}: image {entry['match']}: pull must be one of {sorted(PULL_OUTCOMES)}")
    values = dict(entry)
    if "users" in values:
        values["users"] = tuple(str(user) for user in values["users"])
    return ImageBehaviour(**values)


def _timing(data: Any, source: str) -> Timing:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: timing is a mapping")
    known = set(Timing.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ProfileError(f"{source}: timing: unknown keys {sorted(unknown)}")
    return Timing(**{key: float(value) for key, value in data.items()})


def load_profile(cluster: Any, name: str, clock: Clock | None = None) -> Profile:
    """Create the profile's objects in a simulated cluster and, when it has nodes, run its kubelet.

    ``cluster`` is a ``SimulatedCluster``; ``clock`` a ``clock.Clock`` (``Clock.from_environment()``
    when omitted: realistic unless ``SIMULATOR_CLOCK_SCALE`` is set).
    Objects that already exist are left as they are, so loading into a saved state is harmless.
    """
    from .kubelet import Kubelet  # the kubelet reads profiles: imported here to avoid a cycle

    profile = read_profile(name)
    clock = clock or Clock.from_environment()
    now = clock.timestamp()
    for obj in profile.objects:
        resource = by_api_version_kind(obj["apiVersion"], obj["kind"])
        if resource is None:
            raise ProfileError(
                f"{name}: the simulated cluster does not serve {obj['apiVersion']} {obj['kind']}"
            )
        body = copy.deepcopy(obj)
        for condition in (body.get("status") or {}).get("conditions") or []:
            condition.setdefault("lastHeartbeatTime", now)
            condition.setdefault("lastTransitionTime", now)
        try:
            cluster.store.create(resource, body, body["metadata"].get("namespace"))
        except APIError as exc:
            if exc.code != 409:
                raise
    if profile.of_kind("Node"):
        cluster.add_controller(Kubelet(cluster.store, profile, clock))
    return profile
