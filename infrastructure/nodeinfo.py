"""Pure parsers and verdicts for a node's ``status.nodeInfo``.

The readiness checks feed every node's ``nodeInfo`` through :func:`cvm_node_verdict`; nothing here talks to
the cluster. The strings come from kubelets of every distribution and cloud, so every parser accepts any
text and returns ``None`` (or an ``unknown`` result) instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# CVMs need at least this kernel (the sysbox minimum for the supervising container and its inner runtime).
MIN_KERNEL = (5, 4)
# Below this, sysbox needs the out-of-tree shiftfs module; from here to IDMAP_FULL_KERNEL it is optional.
IDMAP_PARTIAL_KERNEL = (5, 12)
# From this kernel on, ID-mapped mounts cover everything shiftfs did.
IDMAP_FULL_KERNEL = (5, 19)
# Distributions that ship shiftfs at all.
SHIFTFS_DISTROS = frozenset({"ubuntu", "debian", "flatcar"})
# Distributions that run SELinux in enforcing mode by default, which blocks the supervising container.
SELINUX_ENFORCING_DISTROS = frozenset(
    {"rhel", "rhcos", "centos", "rocky", "alma", "oracle-linux", "fedora", "fedora-coreos", "bottlerocket"}
)

# hostUsers: false needs both a kubelet and a containerd that implement pod user namespaces.
HOST_USERS_MIN_KUBERNETES = (1, 30)
HOST_USERS_MIN_CONTAINERD = (2, 0, 5)

# Longest input any parser looks at; a kubelet never reports anything near this.
_MAX_INPUT = 512

_VERSION_START = re.compile(r"v?([0-9]{1,9})\.([0-9]{1,9})(?:\.([0-9]{1,9}))?(?![0-9])")
# RPM-style architecture suffixes (x86_64); Debian names its kernel flavours amd64/arm64, so those stay.
_ARCH_TOKENS = frozenset({"x86_64", "aarch64", "i686", "ppc64le", "s390x", "noarch"})


class Status(StrEnum):
    """Outcome of one check. ``info`` never blocks anything."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class KernelVersion:
    """A kernel release as the kubelet reports it (``uname -r``)."""

    major: int
    minor: int
    patch: int
    flavour: str
    raw: str

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class OsInfo:
    """What ``osImage`` says the node runs."""

    distro: str
    version: str
    pretty: str

    @property
    def is_ubuntu(self) -> bool:
        return self.distro == "ubuntu"


@dataclass(frozen=True)
class Finding:
    """One check on one node: ``check`` is a stable id (linux, kernel, os, idmap)."""

    check: str
    status: Status
    reason: str


@dataclass(frozen=True)
class NodeVerdict:
    """Everything the readiness page shows for one node."""

    status: Status
    findings: tuple[Finding, ...]
    kernel: KernelVersion | None
    os: OsInfo

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons of the findings that decided the status (info notes stay in ``findings``)."""
        return tuple(f.reason for f in self.findings if f.status == self.status)


def _text(value: object) -> str:
    """Any input as a bounded, stripped string (non-strings become empty)."""
    if not isinstance(value, str):
        return ""
    return value.strip()[:_MAX_INPUT]


def _flavour(suffix: str) -> str:
    """The last word of a release suffix that names a build (gke, aws, amzn2, el9_4, talos...)."""
    words = re.findall(r"[a-z][a-z0-9_]*", suffix.lower())
    candidates = [w for w in words if w not in _ARCH_TOKENS]
    return candidates[-1] if candidates else ""


def parse_kernel_version(s: str) -> KernelVersion | None:
    """Parse ``nodeInfo.kernelVersion``; ``None`` when it does not start with ``major.minor``.

    Windows nodes report their build (``10.0.20348.2700``); that parses, with flavour ``windows``, so callers
    can tell it apart from a Linux release.
    """
    text = _text(s)
    match = _VERSION_START.match(text)
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    patch = int(match.group(3) or 0)
    suffix = text[match.end() :]
    flavour = "windows" if (major, minor) == (10, 0) and patch >= 10000 else _flavour(suffix)
    return KernelVersion(major=major, minor=minor, patch=patch, flavour=flavour, raw=text)


# (distro id, pattern on osImage); first match wins, so specific names come before general ones.
_OS_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (distro, re.compile(pattern, re.IGNORECASE))
    for distro, pattern in (
        ("windows", r"^windows\b(?:.*?\b(?P<v>\d{4})\b)?"),
        ("ubuntu", r"^ubuntu\b(?:\s+(?P<v>\d+\.\d+(?:\.\d+)?))?"),
        ("cos", r"^container-optimized os\b(?:.*?(?P<v>\d+(?:\.\d+)*))?"),
        ("amazon-linux", r"^amazon linux\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("bottlerocket", r"^bottlerocket\b(?:\s+os)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("flatcar", r"^flatcar\b.*?(?:\s(?P<v>\d+(?:\.\d+)+))?(?:\s*\(|$)"),
        ("debian", r"^debian\b(?:\s+gnu/linux)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("rhcos", r"^red hat enterprise linux coreos\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("rhel", r"^red hat enterprise linux\b(?:\s+server)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("centos", r"^centos\b(?:\s+(?:linux|stream))?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("rocky", r"^rocky linux\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("alma", r"^almalinux\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("oracle-linux", r"^oracle linux\b(?:\s+server)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("fedora-coreos", r"^fedora coreos\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("fedora", r"^fedora\b(?:\s+linux)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        (
            "azure-linux",
            r"^(?:cbl-mariner|(?:microsoft\s+)?azure linux)\b(?:/linux)?(?:\s+(?P<v>\d+(?:\.\d+)*))?",
        ),
        ("talos", r"^talos\b(?:\s*\(v?(?P<v>\d+(?:\.\d+)*))?"),
        ("opensuse", r"^opensuse\b(?:\s+\w+)?(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("sles", r"^suse linux enterprise\b(?:\s+server)?(?:\s+(?P<v>\d+(?:\s+sp\d+)?))?"),
        ("alpine", r"^alpine linux\b(?:\s+v?(?P<v>\d+(?:\.\d+)*))?"),
        ("buildroot", r"^buildroot\b(?:\s+(?P<v>\d+(?:\.\d+)*))?"),
        ("photon", r"^(?:vmware\s+)?photon\b.*?(?:\s(?P<v>\d+(?:\.\d+)*))?$"),
    )
)


def classify_os_image(os_image: str, operating_system: str = "linux") -> OsInfo:
    """Name the distribution behind ``nodeInfo.osImage`` (``unknown`` when nothing matches)."""
    text = _text(os_image)
    pretty = text or "unknown OS"
    if _text(operating_system).lower() == "windows":
        match = _OS_PATTERNS[0][1].match(text)
        version = (match.group("v") or "") if match else ""
        return OsInfo(distro="windows", version=version, pretty=pretty)
    for distro, pattern in _OS_PATTERNS:
        match = pattern.match(text)
        if match:
            return OsInfo(distro=distro, version=match.group("v") or "", pretty=pretty)
    return OsInfo(distro="unknown", version="", pretty=pretty)


_UNSUPPORTED_OS_REASONS = {
    "cos": "Container-Optimized OS has no sysbox support and a read-only root the supervising container "
    "cannot use. Move CVMs to a node pool with the Ubuntu image (UBUNTU_CONTAINERD on GKE).",
    "amazon-linux": "Amazon Linux is not supported for CVMs. Move CVMs to a node group with an Ubuntu "
    "AMI (amiFamily Ubuntu2204 or Ubuntu2404 in eksctl).",
    "bottlerocket": "Bottlerocket is not supported for CVMs: its root is read-only and SELinux is "
    "enforcing. Move CVMs to a node group with an Ubuntu AMI (amiFamily Ubuntu2204 or Ubuntu2404).",
    "rhcos": "OpenShift nodes (Red Hat Enterprise Linux CoreOS) are not supported for CVMs: SELinux is "
    "enforcing and the security context constraints forbid the supervising container. Use Ubuntu nodes.",
    "windows": "Windows nodes cannot run CVMs.",
    "azure-linux": "Azure Linux (CBL-Mariner) is not supported for CVMs. Add a node pool with "
    "--os-sku Ubuntu.",
    "talos": "Talos is not supported for CVMs: its root is immutable and sysbox cannot be installed. "
    "Use Ubuntu nodes.",
    "flatcar": "Flatcar is not supported for CVMs by this product (sysbox runs there, but the product is "
    "tested on Ubuntu only). Use Ubuntu nodes.",
    "debian": "Debian is not supported for CVMs by this product (sysbox runs there, but the product is "
    "tested on Ubuntu only). Use Ubuntu nodes.",
}


def _os_finding(os_info: OsInfo) -> Finding:
    if os_info.is_ubuntu:
        return Finding("os", Status.PASS, f"OS image is Ubuntu ({os_info.pretty}).")
    if os_info.distro in _UNSUPPORTED_OS_REASONS:
        reason = _UNSUPPORTED_OS_REASONS[os_info.distro]
    elif os_info.distro in SELINUX_ENFORCING_DISTROS:
        reason = (
            "This distribution runs SELinux in enforcing mode, which blocks the supervising container; "
            "it is not supported for CVMs. Use Ubuntu nodes."
        )
    else:
        reason = "CVMs need Ubuntu nodes. Move CVMs to an Ubuntu node pool with the CVM node selector."
    return Finding("os", Status.FAIL, f"OS image is {os_info.pretty!r}, not Ubuntu. {reason}")


def _kernel_finding(raw: str, kernel: KernelVersion | None) -> Finding:
    minimum = "{}.{}".format(*MIN_KERNEL)
    if kernel is None or kernel.flavour == "windows":
        shown = raw or "(empty)"
        return Finding(
            "kernel",
            Status.FAIL,
            f"Could not read a Linux kernel version from {shown!r}; CVMs need Linux {minimum} or newer. "
            "Check the node with `uname -r`.",
        )
    if not kernel.at_least(*MIN_KERNEL):
        return Finding(
            "kernel",
            Status.FAIL,
            f"Kernel {kernel} is older than {minimum}, the minimum for CVMs. Upgrade the node image "
            "(Ubuntu 20.04 or newer ships a new enough kernel).",
        )
    return Finding("kernel", Status.PASS, f"Kernel {kernel} is {minimum} or newer.")


def _idmap_finding(kernel: KernelVersion, os_info: OsInfo) -> Finding:
    if kernel.at_least(*IDMAP_FULL_KERNEL):
        reason = (
            f"Kernel {kernel} has ID-mapped mounts, which sysbox uses for file ownership; "
            "shiftfs is not needed."
        )
    elif kernel.at_least(*IDMAP_PARTIAL_KERNEL):
        reason = (
            f"Kernel {kernel} has partial ID-mapped mounts; shiftfs is optional (it helps with some "
            "bind mounts) and needs secure boot off to load."
        )
    else:
        reason = (
            f"Kernel {kernel} has no ID-mapped mounts, so sysbox needs the shiftfs module (with secure "
            "boot off)."
        )
        if os_info.distro not in SHIFTFS_DISTROS:
            reason += " shiftfs exists only on Ubuntu, Debian and Flatcar; upgrade to kernel 5.19 or newer."
    return Finding("idmap", Status.INFO, reason)


def _get(node_info: Mapping[str, Any], camel: str, snake: str) -> str:
    """Read a nodeInfo field in the API's camelCase or the Python client's snake_case."""
    value = node_info.get(camel)
    if value is None:
        value = node_info.get(snake)
    return _text(value)


def _worst(findings: list[Finding]) -> Status:
    statuses = {f.status for f in findings}
    for status in (Status.FAIL, Status.WARN, Status.PASS):
        if status in statuses:
            return status
    return Status.INFO


def cvm_node_verdict(node_info: Mapping[str, Any]) -> NodeVerdict:
    """Can CVMs run on this node? Linux, kernel 5.4 or newer, Ubuntu, plus a note on shiftfs.

    ``node_info`` is ``node.status.nodeInfo`` as a dict (camelCase from the API or snake_case from the
    Python client's ``to_dict()``).
    """
    if not isinstance(node_info, Mapping):
        node_info = {}
    raw_kernel = _get(node_info, "kernelVersion", "kernel_version")
    operating_system = _get(node_info, "operatingSystem", "operating_system").lower()
    os_info = classify_os_image(_get(node_info, "osImage", "os_image"), operating_system or "linux")
    kernel = parse_kernel_version(raw_kernel)

    if operating_system == "windows" or os_info.distro == "windows":
        finding = Finding(
            "linux",
            Status.FAIL,
            "This is a Windows node; CVMs need Linux. Keep CVMs off it with the CVM node selector.",
        )
        return NodeVerdict(status=Status.FAIL, findings=(finding,), kernel=kernel, os=os_info)
    if operating_system not in ("", "linux"):
        finding = Finding(
            "linux",
            Status.FAIL,
            f"The node runs {operating_system!r}; CVMs need Linux. "
            "Keep CVMs off it with the CVM node selector.",
        )
        return NodeVerdict(status=Status.FAIL, findings=(finding,), kernel=kernel, os=os_info)

    findings = [Finding("linux", Status.PASS, "The node runs Linux.")]
    kernel_finding = _kernel_finding(raw_kernel, kernel)
    findings.append(kernel_finding)
    findings.append(_os_finding(os_info))
    if kernel is not None and kernel_finding.status == Status.PASS:
        findings.append(_idmap_finding(kernel, os_info))
    return NodeVerdict(status=_worst(findings), findings=tuple(findings), kernel=kernel, os=os_info)


def container_runtime(container_runtime_version: str) -> tuple[str, str]:
    """Split ``nodeInfo.containerRuntimeVersion`` (``containerd://1.7.22``) into name and version."""
    text = _text(container_runtime_version)
    name, sep, version = text.partition("://")
    if not sep:
        return (text.lower(), "")
    return (name.lower(), version)


def _numbers(text: str, count: int) -> tuple[int, ...] | None:
    """The first ``count`` dotted numbers of a version (missing trailing parts are 0)."""
    match = _VERSION_START.match(text)
    if match is None:
        return None
    parts = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    return parts[:count]


def parse_k8s_version(git_version: str) -> tuple[int, int, int] | None:
    """``v1.31.2-gke.1000`` → ``(1, 31, 2)``; ``None`` when the string is not a version."""
    numbers = _numbers(_text(git_version), 3)
    if numbers is None:
        return None
    major, minor, patch = numbers
    return (major, minor, patch)


def supports_host_users(kubelet_version: str, runtime: str) -> tuple[bool, str]:
    """Can a sysbox pod on this node get its user namespace the way the product asks for it?

    ``runtime`` is ``nodeInfo.containerRuntimeVersion``. containerd 2.0.5+ with Kubernetes 1.30+ supports
    ``hostUsers: false``; CRI-O (where the sysbox installer puts nodes with older containerd) takes the
    ``io.kubernetes.cri-o.userns-mode`` annotation instead.
    """
    name, version = container_runtime(runtime)
    kubernetes = parse_k8s_version(kubelet_version)
    if name == "cri-o":
        return (
            True,
            f"CRI-O {version or '(unknown version)'}: the product sets the "
            "io.kubernetes.cri-o.userns-mode annotation for the user namespace.",
        )
    if name != "containerd":
        shown = name or "an unknown runtime"
        return (
            False,
            f"The node runs {shown}; sysbox pods need containerd 2.0.5 or newer, or CRI-O. "
            "Re-run the sysbox installer on this node.",
        )
    containerd = _numbers(version, 3)
    min_containerd = ".".join(map(str, HOST_USERS_MIN_CONTAINERD))
    min_kubernetes = "{}.{}".format(*HOST_USERS_MIN_KUBERNETES)
    if containerd is None or containerd < HOST_USERS_MIN_CONTAINERD:
        return (
            False,
            f"containerd {version or '(unknown version)'} is older than {min_containerd}, so it cannot "
            "give pods their own user namespace (hostUsers: false). Upgrade containerd or let the sysbox "
            "installer switch the node to CRI-O.",
        )
    if kubernetes is None or kubernetes[:2] < HOST_USERS_MIN_KUBERNETES:
        return (
            False,
            f"The kubelet ({kubelet_version or 'unknown version'}) is older than Kubernetes "
            f"{min_kubernetes}, which pods with hostUsers: false need. Upgrade the node.",
        )
    return (
        True,
        f"containerd {version} on Kubernetes {kubelet_version}: pods get their own user namespace "
        "with hostUsers: false.",
    )
