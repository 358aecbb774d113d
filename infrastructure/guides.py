"""Cloud setup guides: commands and config files for CVM-capable node pools, built from a small form.

Every guide goes through a ``validate_*`` function (per-field errors, like a Django form) and is built as
argument lists joined with :func:`shlex.join`, so no value a user types can break out of its argument.
The eksctl config is built as a dict and dumped with :func:`yaml.safe_dump`, so it always parses.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from infrastructure.validators import validate_node_selector

# Node labels the guides put on CVM nodes, so the CVM node selector can target exactly those nodes.
CVM_NODE_LABELS: dict[str, str] = {"coderadmin.dev/cvm": "true"}

MIN_NODES = 1
MAX_NODES = 1000

# --- GKE -----------------------------------------------------------------------------------------------
GKE_IMAGE_TYPE = "UBUNTU_CONTAINERD"
# Without a pinned version the cluster follows this channel, whose versions GKE can always create; the
# old UBUNTU image type and 1.17-era versions the original requirement named can no longer be created.
GKE_DEFAULT_RELEASE_CHANNEL = "regular"
# 4 vCPUs and 16 GiB: sysbox asks for at least 4 CPUs and 4 GiB per node, and environments need room.
GKE_DEFAULT_MACHINE_TYPE = "e2-standard-4"
GKE_DEFAULT_POOL = "cvm-pool"

# --- EKS -----------------------------------------------------------------------------------------------
# A Kubernetes minor EKS offers in standard support as of late 2026 and Canonical publishes Ubuntu
# EKS AMIs for; revisit with each EKS release (eksctl rejects versions EKS no longer creates).
EKS_DEFAULT_VERSION = "1.35"
EKS_AMI_FAMILIES = ("Ubuntu2404", "Ubuntu2204")
EKS_DEFAULT_INSTANCE_TYPE = "m6i.xlarge"
EKS_DEFAULT_NODE_GROUP = "cvm-ubuntu"
EKS_DEFAULT_VOLUME_GIB = 100
EKS_CONFIG_FILENAME = "coderadmin-cvm-cluster.yaml"

# --- AKS -----------------------------------------------------------------------------------------------
AKS_OS_SKU = "Ubuntu"
AKS_DEFAULT_VM_SIZE = "Standard_D4s_v5"
AKS_DEFAULT_POOL = "cvmpool"

# --- sysbox on your own nodes --------------------------------------------------------------------------
SYSBOX_INSTALL_MANIFEST = (
    "https://raw.githubusercontent.com/nestybox/sysbox/master/sysbox-k8s-manifests/sysbox-install.yaml"
)
SYSBOX_RUNTIME_CLASS = "sysbox-runc"
SYSBOX_LABELS: dict[str, str] = {
    "sysbox-install=yes": "You set it: it asks the sysbox-deploy-k8s DaemonSet to install sysbox on "
    "the node.",
    "sysbox-runtime=running": "The installer sets it once sysbox runs on the node; the sysbox-runc "
    "RuntimeClass schedules CVM pods only onto nodes with it.",
}
MAX_SYSBOX_NODES = 100

_GKE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?")
_GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_GCP_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}")
_GCP_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}-[a-z]")
_GKE_VERSION = re.compile(r"latest|1\.[0-9]{1,2}(?:\.[0-9]{1,3}(?:-gke\.[0-9]{1,10})?)?")
_GCE_MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+){1,4}")
_EKS_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_EKS_NODE_GROUP = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")
_EKS_VERSION = re.compile(r"1\.[0-9]{1,2}")
_EC2_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]{0,20}\.[a-z0-9]{1,20}")
_AKS_CLUSTER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_AKS_POOL = re.compile(r"[a-z][a-z0-9]{0,11}")
_AZ_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]")
_AKS_VERSION = re.compile(r"1\.[0-9]{1,2}(?:\.[0-9]{1,3})?")
_AZ_VM_SIZE = re.compile(r"Standard_[A-Za-z0-9_]{1,40}")
_NODE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})

Errors = dict[str, str]


class _FieldError(Exception):
    """One form field's problem, collected into the errors dict."""


@dataclass(frozen=True)
class GkeGuideInput:
    cluster_name: str
    location: str
    pool_name: str = GKE_DEFAULT_POOL
    version: str = ""
    machine_type: str = GKE_DEFAULT_MACHINE_TYPE
    num_nodes: int = 2
    project: str = ""
    existing_cluster: bool = False
    needs_shiftfs: bool = False
    node_labels: Mapping[str, str] = field(default_factory=lambda: dict(CVM_NODE_LABELS))

    @property
    def is_zone(self) -> bool:
        return _GCP_ZONE.fullmatch(self.location) is not None


@dataclass(frozen=True)
class EksGuideInput:
    cluster_name: str
    region: str
    version: str = EKS_DEFAULT_VERSION
    node_group_name: str = EKS_DEFAULT_NODE_GROUP
    ami_family: str = EKS_AMI_FAMILIES[0]
    instance_type: str = EKS_DEFAULT_INSTANCE_TYPE
    desired_capacity: int = 2
    min_size: int = 1
    max_size: int = 4
    volume_size: int = EKS_DEFAULT_VOLUME_GIB
    existing_cluster: bool = False
    node_labels: Mapping[str, str] = field(default_factory=lambda: dict(CVM_NODE_LABELS))


@dataclass(frozen=True)
class AksGuideInput:
    resource_group: str
    cluster_name: str
    pool_name: str = AKS_DEFAULT_POOL
    vm_size: str = AKS_DEFAULT_VM_SIZE
    node_count: int = 2
    version: str = ""
    node_labels: Mapping[str, str] = field(default_factory=lambda: dict(CVM_NODE_LABELS))


# --- form parsing ----------------------------------------------------------------------------------------


def _text(data: Mapping[str, Any], name: str, default: str = "") -> str:
    """A form value as stripped text; missing or empty gives the field's default (checkboxes: "false")."""
    value = data.get(name)
    if value is None:
        return default
    text = str(value).strip()
    return text or default


def _matching(pattern: re.Pattern[str], message: str, *, required: bool = True) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value:
            if required:
                raise _FieldError("This field is required.")
            return value
        if pattern.fullmatch(value) is None:
            raise _FieldError(message)
        return value

    return check


def _count(low: int, high: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        if not re.fullmatch(r"[0-9]{1,7}", value):
            raise _FieldError(f"Enter a whole number from {low} to {high}.")
        number = int(value)
        if not low <= number <= high:
            raise _FieldError(f"Enter a whole number from {low} to {high}.")
        return number

    return check


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _FieldError("Choose yes or no.")


def _labels(value: str) -> dict[str, str]:
    try:
        return validate_node_selector(value)
    except ValidationError as exc:
        raise _FieldError("; ".join(exc.messages)) from None


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in options:
            raise _FieldError(f"Choose one of: {', '.join(options)}.")
        return value

    return check


def _collect(
    data: Mapping[str, Any], spec: Mapping[str, tuple[str, Callable[[str], Any]]]
) -> tuple[dict, Errors]:
    """Run each field's check on its text (or default); gather values and per-field errors."""
    if not isinstance(data, Mapping):
        data = {}
    values: dict[str, Any] = {}
    errors: Errors = {}
    for name, (default, check) in spec.items():
        try:
            values[name] = check(_text(data, name, default))
        except _FieldError as exc:
            errors[name] = str(exc)
    return values, errors


def _labels_text(labels: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in labels.items())


_GKE_NAME_MESSAGE = (
    "Use 1 to 40 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
)
_COUNT = _count(MIN_NODES, MAX_NODES)


def validate_gke(data: Mapping[str, Any]) -> tuple[GkeGuideInput | None, Errors]:
    """Validate the GKE form; returns the input, or ``None`` and an error message per field."""
    values, errors = _collect(
        data,
        {
            "cluster_name": ("", _matching(_GKE_NAME, _GKE_NAME_MESSAGE)),
            "location": (
                "",
                _matching(
                    re.compile(f"{_GCP_REGION.pattern}|{_GCP_ZONE.pattern}"),
                    "Enter a region such as us-central1 or a zone such as us-central1-a.",
                ),
            ),
            "pool_name": (GKE_DEFAULT_POOL, _matching(_GKE_NAME, _GKE_NAME_MESSAGE)),
            "version": (
                "",
                _matching(
                    _GKE_VERSION,
                    "Enter a GKE version such as 1.33 or 1.33.5-gke.1080000, or leave it empty for the "
                    f"{GKE_DEFAULT_RELEASE_CHANNEL} channel's default.",
                    required=False,
                ),
            ),
            "machine_type": (
                GKE_DEFAULT_MACHINE_TYPE,
                _matching(_GCE_MACHINE_TYPE, "Enter a Compute Engine machine type such as e2-standard-4."),
            ),
            "num_nodes": ("2", _COUNT),
            "project": (
                "",
                _matching(
                    _GCP_PROJECT,
                    "Enter a project ID: 6 to 30 lowercase letters, digits and hyphens, starting with a "
                    "letter.",
                    required=False,
                ),
            ),
            "existing_cluster": ("false", _flag),
            "needs_shiftfs": ("false", _flag),
            "node_labels": (_labels_text(CVM_NODE_LABELS), _labels),
        },
    )
    if errors:
        return None, errors
    return GkeGuideInput(**values), {}


def validate_eks(data: Mapping[str, Any]) -> tuple[EksGuideInput | None, Errors]:
    """Validate the EKS form; min ≤ desired ≤ max is checked across fields."""
    values, errors = _collect(
        data,
        {
            "cluster_name": (
                "",
                _matching(
                    _EKS_CLUSTER_NAME,
                    "Use 1 to 100 letters, digits, hyphens and underscores, starting with a letter or digit.",
                ),
            ),
            "region": ("", _matching(_AWS_REGION, "Enter an AWS region such as eu-west-1.")),
            "version": (
                EKS_DEFAULT_VERSION,
                _matching(_EKS_VERSION, f"Enter an EKS version such as {EKS_DEFAULT_VERSION} (major.minor)."),
            ),
            "node_group_name": (
                EKS_DEFAULT_NODE_GROUP,
                _matching(
                    _EKS_NODE_GROUP,
                    "Use 1 to 63 letters, digits and hyphens, starting and ending with a letter or digit.",
                ),
            ),
            "ami_family": (EKS_AMI_FAMILIES[0], _choice(EKS_AMI_FAMILIES)),
            "instance_type": (
                EKS_DEFAULT_INSTANCE_TYPE,
                _matching(_EC2_INSTANCE_TYPE, "Enter an EC2 instance type such as m6i.xlarge."),
            ),
            "desired_capacity": ("2", _COUNT),
            "min_size": ("1", _COUNT),
            "max_size": ("4", _COUNT),
            "volume_size": (str(EKS_DEFAULT_VOLUME_GIB), _count(20, 16384)),
            "existing_cluster": ("false", _flag),
            "node_labels": (_labels_text(CVM_NODE_LABELS), _labels),
        },
    )
    if not {"desired_capacity", "min_size", "max_size"} & errors.keys():
        if values["min_size"] > values["desired_capacity"]:
            errors["min_size"] = "The minimum cannot be larger than the desired capacity."
        if values["desired_capacity"] > values["max_size"]:
            errors["max_size"] = "The maximum cannot be smaller than the desired capacity."
    if errors:
        return None, errors
    return EksGuideInput(**values), {}


def validate_aks(data: Mapping[str, Any]) -> tuple[AksGuideInput | None, Errors]:
    """Validate the AKS form."""
    values, errors = _collect(
        data,
        {
            "resource_group": (
                "",
                _matching(
                    _AZ_RESOURCE_GROUP,
                    "Use 1 to 90 letters, digits, '-', '_', '.', '(' and ')', not ending with a period.",
                ),
            ),
            "cluster_name": (
                "",
                _matching(
                    _AKS_CLUSTER_NAME,
                    "Use 1 to 63 letters, digits, hyphens and underscores, starting and ending with a letter "
                    "or digit.",
                ),
            ),
            "pool_name": (
                AKS_DEFAULT_POOL,
                _matching(_AKS_POOL, "Use 1 to 12 lowercase letters and digits, starting with a letter."),
            ),
            "vm_size": (
                AKS_DEFAULT_VM_SIZE,
                _matching(_AZ_VM_SIZE, f"Enter an Azure VM size such as {AKS_DEFAULT_VM_SIZE}."),
            ),
            "node_count": ("2", _COUNT),
            "version": (
                "",
                _matching(
                    _AKS_VERSION,
                    "Enter a Kubernetes version such as 1.33 or 1.33.2, or leave it empty for the cluster's.",
                    required=False,
                ),
            ),
            "node_labels": (_labels_text(CVM_NODE_LABELS), _labels),
        },
    )
    if errors:
        return None, errors
    return AksGuideInput(**values), {}


def validate_sysbox(data: Mapping[str, Any]) -> tuple[list[str] | None, Errors]:
    """Node names for the sysbox steps: separated by spaces, commas or new lines."""
    text = _text(data if isinstance(data, Mapping) else {}, "node_names")
    names = [name for name in re.split(r"[\s,]+", text) if name]
    if not names:
        return None, {"node_names": "Enter at least one node name (kubectl get nodes lists them)."}
    if len(names) > MAX_SYSBOX_NODES:
        return None, {"node_names": f"Enter at most {MAX_SYSBOX_NODES} node names."}
    bad = [name for name in names if len(name) > 253 or _NODE_NAME.fullmatch(name) is None]
    if bad:
        shown = ", ".join(repr(name) for name in bad[:5])
        return None, {"node_names": f"Not a node name: {shown}. Node names are lowercase DNS names."}
    return list(dict.fromkeys(names)), {}


# --- generators ------------------------------------------------------------------------------------------


def display_command(argv: Sequence[str]) -> str:
    """A long command over several lines (each ``--flag`` on its own), still one shell command."""
    parts = [shlex.quote(arg) for arg in argv]
    lines = [parts[0]]
    for part in parts[1:]:
        if part.startswith("--"):
            lines.append(part)
        else:
            lines[-1] += f" {part}"
    return " \\\n    ".join(lines)


def _join_labels(labels: Mapping[str, str], separator: str) -> str:
    return separator.join(f"{key}={value}" for key, value in labels.items())


def gke_argv(inp: GkeGuideInput) -> list[list[str]]:
    """Create the cluster (its default pool is the CVM pool) or add a CVM pool; then fetch credentials."""
    location = ["--zone" if inp.is_zone else "--region", inp.location]
    project = ["--project", inp.project] if inp.project else []
    nodes = [
        "--image-type",
        GKE_IMAGE_TYPE,
        "--machine-type",
        inp.machine_type,
        "--num-nodes",
        str(inp.num_nodes),
    ]
    if inp.node_labels:
        nodes += ["--node-labels", _join_labels(inp.node_labels, ",")]
    if inp.needs_shiftfs:
        nodes.append("--no-shielded-secure-boot")
    if not inp.existing_cluster:
        version = (
            ["--cluster-version", inp.version]
            if inp.version
            else ["--release-channel", GKE_DEFAULT_RELEASE_CHANNEL]
        )
        create = ["gcloud", "container", "clusters", "create", inp.cluster_name, *project, *location]
        create += [*version, *nodes]
    else:
        create = ["gcloud", "container", "node-pools", "create", inp.pool_name, "--cluster", inp.cluster_name]
        create += [*project, *location]
        create += (["--node-version", inp.version] if inp.version else []) + nodes
    credentials = [
        "gcloud",
        "container",
        "clusters",
        "get-credentials",
        inp.cluster_name,
        *project,
        *location,
    ]
    return [create, credentials]


def gke_commands(inp: GkeGuideInput) -> list[str]:
    """The GKE commands as shell lines, every value quoted."""
    return [shlex.join(argv) for argv in gke_argv(inp)]


def gke_notes(inp: GkeGuideInput) -> list[str]:
    """What the admin should know about the GKE commands."""
    notes = [
        f"{GKE_IMAGE_TYPE} gives Ubuntu nodes with containerd; Container-Optimized OS (the default image) "
        "cannot run CVMs.",
    ]
    if not inp.version and not inp.existing_cluster:
        notes.append(
            f"No version given: the cluster follows the {GKE_DEFAULT_RELEASE_CHANNEL} release channel and "
            "gets its default version."
        )
    if not inp.is_zone:
        notes.append(
            f"{inp.location} is a region: --num-nodes is per zone, so the pool gets {inp.num_nodes} nodes in "
            "each of the region's zones."
        )
    if inp.needs_shiftfs:
        notes.append(
            "Secure boot is turned off (--no-shielded-secure-boot) so the unsigned shiftfs module can load."
        )
    else:
        notes.append(
            "Secure boot stays at GKE's default (off). Only kernels older than 5.19 may need shiftfs, "
            "which cannot load with secure boot on; current Ubuntu node images do not."
        )
    return notes


def eks_config(inp: EksGuideInput) -> dict[str, Any]:
    """The eksctl ClusterConfig as a dict."""
    node_group: dict[str, Any] = {
        "name": inp.node_group_name,
        "amiFamily": inp.ami_family,
        "instanceType": inp.instance_type,
        "desiredCapacity": inp.desired_capacity,
        "minSize": inp.min_size,
        "maxSize": inp.max_size,
        "volumeSize": inp.volume_size,
    }
    if inp.node_labels:
        node_group["labels"] = dict(inp.node_labels)
    return {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {"name": inp.cluster_name, "region": inp.region, "version": inp.version},
        "nodeGroups": [node_group],
    }


def eks_config_yaml(inp: EksGuideInput) -> str:
    """The eksctl ClusterConfig as YAML (safe_dump, so it always parses back to :func:`eks_config`).

    Non-ASCII stays escaped: PyYAML writes a raw NEL (U+0085) into a single-quoted scalar, which reads back
    as a line break.
    """
    return yaml.safe_dump(eks_config(inp), sort_keys=False, default_flow_style=False)


def eks_argv(inp: EksGuideInput, filename: str = EKS_CONFIG_FILENAME) -> list[list[str]]:
    """Create the cluster from the config, or only its node group on an existing cluster."""
    if not inp.existing_cluster:
        return [["eksctl", "create", "cluster", "--config-file", filename]]
    return [["eksctl", "create", "nodegroup", "--config-file", filename]]


def eks_commands(inp: EksGuideInput, filename: str = EKS_CONFIG_FILENAME) -> list[str]:
    return [shlex.join(argv) for argv in eks_argv(inp, filename)]


def aks_argv(inp: AksGuideInput) -> list[list[str]]:
    """Add an Ubuntu node pool to an AKS cluster; then fetch credentials."""
    add = [
        "az",
        "aks",
        "nodepool",
        "add",
        "--resource-group",
        inp.resource_group,
        "--cluster-name",
        inp.cluster_name,
        "--name",
        inp.pool_name,
        "--mode",
        "User",
        "--os-type",
        "Linux",
        "--os-sku",
        AKS_OS_SKU,
        "--node-vm-size",
        inp.vm_size,
        "--node-count",
        str(inp.node_count),
    ]
    if inp.version:
        add += ["--kubernetes-version", inp.version]
    if inp.node_labels:
        add += ["--labels", *(f"{key}={value}" for key, value in inp.node_labels.items())]
    credentials = [
        "az",
        "aks",
        "get-credentials",
        "--resource-group",
        inp.resource_group,
        "--name",
        inp.cluster_name,
    ]
    return [add, credentials]


def aks_commands(inp: AksGuideInput) -> list[str]:
    return [shlex.join(argv) for argv in aks_argv(inp)]


def sysbox_argv(node_names: Sequence[str]) -> list[list[str]]:
    """Label the nodes, apply the installer, then confirm the nodes run sysbox and the RuntimeClass exists."""
    if not node_names:
        raise ValueError("at least one node name is needed")
    return [
        ["kubectl", "label", "nodes", *node_names, "sysbox-install=yes"],
        ["kubectl", "apply", "-f", SYSBOX_INSTALL_MANIFEST],
        ["kubectl", "get", "nodes", "-l", "sysbox-runtime=running"],
        ["kubectl", "get", "runtimeclass", SYSBOX_RUNTIME_CLASS],
    ]


def sysbox_steps(node_names: Sequence[str]) -> list[str]:
    """The sysbox-on-your-own-nodes steps as shell lines (names as returned by :func:`validate_sysbox`)."""
    return [shlex.join(argv) for argv in sysbox_argv(node_names)]


SYSBOX_NOTES = (
    "The installer restarts the kubelet and the container runtime on each labelled node (and may switch the "
    "node to CRI-O when its containerd is too old), so pods on those nodes restart: drain them first.",
    "While it installs, the node carries the taint sysbox-runtime=not-running:NoSchedule; it is removed "
    "when the node is ready.",
    "Nodes must run Ubuntu with at least 4 CPUs and 4 GiB of memory.",
)

IMAGE_DOCKERFILE_SYSTEMD = """\
FROM ubuntu:24.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      systemd systemd-sysv dbus sudo bash curl git ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
# With /sbin/init present, the CVM boots systemd as PID 1.
RUN ln -sf /lib/systemd/systemd /sbin/init
# The environment's user must exist in the image.
ARG USERNAME=coder
RUN useradd --create-home --shell /bin/bash --groups sudo "$USERNAME" \\
 && echo "$USERNAME ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/$USERNAME"
"""

IMAGE_DOCKERFILE_DOCKER = """\
FROM ubuntu:24.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      systemd systemd-sysv dbus sudo bash curl git ca-certificates build-essential docker.io \\
 && rm -rf /var/lib/apt/lists/*
# systemd starts dockerd when the CVM boots.
RUN systemctl enable docker
RUN ln -sf /lib/systemd/systemd /sbin/init
ARG USERNAME=coder
RUN useradd --create-home --shell /bin/bash --groups sudo,docker "$USERNAME" \\
 && echo "$USERNAME ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/$USERNAME"
"""
