"""Admission of the simulated API server: Pod Security Admission and ResourceQuota.

Interface used by the server:
- ``admit(store, operation, group, version, kind, namespace, obj, old=None) -> None``; raises
  ``APIError`` 403 with the real "violates PodSecurity" / "exceeded quota" / "must specify" messages.
  ``store`` is a ``StoreView`` (see ``views.py``).
- ``quota_usage(store, namespace) -> {quota name: {resource: quantity}}``: what the quota controller
  would write to each quota's ``status.used``.

The checks, their order and their wording follow the real pod-security-admission library and
quota admission plugin, so the product sees the same 403s it would see on a real cluster. Quota
usage is computed from the store at admission time (the simulator has no quota controller), so
a quota is enforced as soon as it exists.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import errors
from .quantity import ZERO, Quantity, QuantityError, parse_quantity
from .resources import by_api_version_kind, by_group_plural
from .views import StoreView

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")


def admit(
    store: StoreView,
    operation: str,
    group: str,
    version: str,
    kind: str,
    namespace: str | None,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
) -> None:
    """Run the admission plugins in the real server's order: PodSecurity, then ResourceQuota."""
    if group == "" and kind == "Pod" and namespace:
        _pod_security(store, operation, namespace, obj, old)
    if namespace:
        _resource_quota(store, operation, group, version, kind, namespace, obj, old)


# ---------------------------------------------------------------------------------------------
# Pod Security Admission
# ---------------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quote(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_quote(names)}"


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers, containers, then ephemeral containers: the order the real checks visit them."""
    return [
        _dict(container)
        for field in ("initContainers", "containers", "ephemeralContainers")
        for container in _list(spec.get(field))
    ]


def _security(container: dict[str, Any]) -> dict[str, Any]:
    return _dict(container.get("securityContext"))


@dataclass(frozen=True)
class _Check:
    id: str
    level: str
    run: Callable[[dict[str, Any], dict[str, Any]], tuple[str, str] | None]
    overrides: str = ""


def _check_privileged(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad = [c.get("name", "") for c in _containers(spec) if _security(c).get("privileged") is True]
    if bad:
        return "privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true"
    return None


def _check_host_namespaces(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return ("host namespaces", ", ".join(bad)) if bad else None


def _check_host_path_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad = [v.get("name", "") for v in map(_dict, _list(spec.get("volumes"))) if v.get("hostPath") is not None]
    if bad:
        return "hostPath volumes", f"{_plural('volume', 'volumes', len(bad))} {_quote(bad)}"
    return None


def _check_host_ports(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad, ports = [], set()
    for container in _containers(spec):
        used = [p.get("hostPort") for p in map(_dict, _list(container.get("ports"))) if p.get("hostPort")]
        if used:
            bad.append(container.get("name", ""))
            ports.update(str(port) for port in used)
    if not bad:
        return None
    return "hostPort", (
        f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}"
    )


_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _added_capabilities(container: dict[str, Any]) -> list[str]:
    return [str(cap) for cap in _list(_dict(_security(container).get("capabilities")).get("add"))]


def _check_capabilities_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad, caps = [], set()
    for container in _containers(spec):
        forbidden = [cap for cap in _added_capabilities(container) if cap not in _BASELINE_CAPABILITIES]
        if forbidden:
            bad.append(container.get("name", ""))
            caps.update(forbidden)
    if not bad:
        return None
    return "non-default capabilities", (
        f"{_containers_phrase(bad)} must not include {_quote(sorted(caps))} in "
        "securityContext.capabilities.add"
    )


def _check_capabilities_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    missing_drop, adding, caps = [], [], set()
    for container in _containers(spec):
        capabilities = _dict(_security(container).get("capabilities"))
        if "ALL" not in _list(capabilities.get("drop")):
            missing_drop.append(container.get("name", ""))
        forbidden = [cap for cap in _added_capabilities(container) if cap != "NET_BIND_SERVICE"]
        if forbidden:
            adding.append(container.get("name", ""))
            caps.update(forbidden)
    details = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_quote(sorted(caps))} in "
            "securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _check_proc_mount(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad, values = [], set()
    for container in _containers(spec):
        proc_mount = _security(container).get("procMount")
        if proc_mount not in (None, "", "Default"):
            bad.append(container.get("name", ""))
            values.add(str(proc_mount))
    if bad:
        return (
            "procMount",
            f"{_containers_phrase(bad)} must not set securityContext.procMount to {_quote(sorted(values))}",
        )
    return None


_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)


def _check_sysctls(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    sysctls = _list(_dict(spec.get("securityContext")).get("sysctls"))
    bad = [str(s.get("name", "")) for s in map(_dict, sysctls) if s.get("name") not in _SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def _check_selinux(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters, bad_containers, bad_types = [], [], set()
    set_user = set_role = False

    def bad(options: dict[str, Any]) -> bool:
        nonlocal set_user, set_role
        found = False
        if options.get("type", "") not in _SELINUX_TYPES:
            bad_types.add(str(options.get("type")))
            found = True
        if options.get("user"):
            set_user = found = True
        if options.get("role"):
            set_role = found = True
        return found

    if bad(_dict(_dict(spec.get("securityContext")).get("seLinuxOptions"))):
        setters.append("pod")
    for container in _containers(spec):
        if bad(_dict(_security(container).get("seLinuxOptions"))):
            bad_containers.append(container.get("name", ""))
    if bad_containers:
        setters.append(_containers_phrase(bad_containers))
    if not setters:
        return None
    data = [f"{_plural('type', 'types', len(bad_types))} {_quote(sorted(bad_types))}"] if bad_types else []
    data += ["user may not be set"] if set_user else []
    data += ["role may not be set"] if set_role else []
    return "seLinuxOptions", (
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}"
    )


_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _bad_apparmor_type(context: dict[str, Any]) -> str | None:
    """The profile type if one is set and it is neither RuntimeDefault nor Localhost."""
    profile = context.get("appArmorProfile")
    if profile is None:
        return None
    profile_type = str(_dict(profile).get("type", ""))
    return None if profile_type in ("RuntimeDefault", "Localhost") else profile_type


def _check_apparmor(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters, bad_containers, values = [], [], set()
    pod_type = _bad_apparmor_type(_dict(spec.get("securityContext")))
    if pod_type is not None:
        setters.append("pod")
        values.add(pod_type)
    for container in _containers(spec):
        container_type = _bad_apparmor_type(_security(container))
        if container_type is not None:
            bad_containers.append(container.get("name", ""))
            values.add(container_type)
    if bad_containers:
        setters.append(_containers_phrase(bad_containers))
    annotations = sorted(
        f'{key}="{value}"'
        for key, value in _dict(meta.get("annotations")).items()
        if key.startswith(_APPARMOR_ANNOTATION)
        and value not in ("", "runtime/default")
        and not str(value).startswith("localhost/")
    )
    shown = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(shown)), (
        f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(shown)}"
    )


def _seccomp_type(context: dict[str, Any]) -> str | None:
    profile = context.get("seccompProfile")
    return str(_dict(profile).get("type", "")) if profile is not None else None


def _check_seccomp_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters, bad_containers = [], []
    if _seccomp_type(_dict(spec.get("securityContext"))) == "Unconfined":
        setters.append("pod")
    for container in _containers(spec):
        if _seccomp_type(_security(container)) == "Unconfined":
            bad_containers.append(container.get("name", ""))
    if bad_containers:
        setters.append(_containers_phrase(bad_containers))
    if setters:
        return "seccompProfile", (
            f'{" and ".join(setters)} must not set securityContext.seccompProfile.type to "Unconfined"'
        )
    return None


def _check_seccomp_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters, explicit, implicit, values = [], [], [], set()
    pod_type = _seccomp_type(_dict(spec.get("securityContext")))
    pod_ok = pod_type in ("RuntimeDefault", "Localhost")
    if pod_type is not None and not pod_ok:
        setters.append("pod")
        values.add(pod_type)
    for container in _containers(spec):
        container_type = _seccomp_type(_security(container))
        if container_type is None:
            if not pod_ok:
                implicit.append(container.get("name", ""))
        elif container_type not in ("RuntimeDefault", "Localhost"):
            explicit.append(container.get("name", ""))
            values.add(container_type)
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_quote(sorted(values))}"
        )
    if implicit:
        return "seccompProfile", (
            f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost"'
        )
    return None


def _check_allow_privilege_escalation(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad = [
        c.get("name", "")
        for c in _containers(spec)
        if _security(c).get("allowPrivilegeEscalation") is not False
    ]
    if bad:
        return "allowPrivilegeEscalation != false", (
            f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false"
        )
    return None


def _check_run_as_non_root(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters, explicit, implicit = [], [], []
    pod_value = _dict(spec.get("securityContext")).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    for container in _containers(spec):
        value = _security(container).get("runAsNonRoot")
        if value is False:
            explicit.append(container.get("name", ""))
        elif value is None and pod_value is not True:
            implicit.append(container.get("name", ""))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return "runAsNonRoot != true", (
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true"
        )
    return None


def _check_run_as_user(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    setters = ["pod"] if _dict(spec.get("securityContext")).get("runAsUser") == 0 else []
    bad = [c.get("name", "") for c in _containers(spec) if _security(c).get("runAsUser") == 0]
    if bad:
        setters.append(_containers_phrase(bad))
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


_ALLOWED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
_RESTRICTED_VOLUME_TYPES = (
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "portworxVolume",
    "photonPersistentDisk",
    "scaleIO",
    "storageos",
    "hostPath",
    "image",
)


def _check_restricted_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    bad, types = [], set()
    for volume in map(_dict, _list(spec.get("volumes"))):
        if any(volume.get(kind) is not None for kind in _ALLOWED_VOLUME_TYPES):
            continue
        used = [kind for kind in _RESTRICTED_VOLUME_TYPES if volume.get(kind) is not None]
        bad.append(volume.get("name", ""))
        types.update(used or ["unknown"])
    if not bad:
        return None
    return "restricted volume types", (
        f"{_plural('volume', 'volumes', len(bad))} {_quote(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(types))} {_quote(sorted(types))}"
    )


def _check_host_process(meta: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str] | None:
    def host_process(context: dict[str, Any]) -> bool:
        return _dict(context.get("windowsOptions")).get("hostProcess") is True

    setters = ["pod"] if host_process(_dict(spec.get("securityContext"))) else []
    bad = [c.get("name", "") for c in _containers(spec) if host_process(_security(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return (
            "hostProcess",
            f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
        )
    return None


_CHECKS = (
    _Check("allowPrivilegeEscalation", "restricted", _check_allow_privilege_escalation),
    _Check("appArmorProfile", "baseline", _check_apparmor),
    _Check("capabilities_baseline", "baseline", _check_capabilities_baseline),
    _Check("capabilities_restricted", "restricted", _check_capabilities_restricted, "capabilities_baseline"),
    _Check("hostNamespaces", "baseline", _check_host_namespaces),
    _Check("hostPathVolumes", "baseline", _check_host_path_volumes),
    _Check("hostPorts", "baseline", _check_host_ports),
    _Check("privileged", "baseline", _check_privileged),
    _Check("procMount", "baseline", _check_proc_mount),
    _Check("restrictedVolumes", "restricted", _check_restricted_volumes, "hostPathVolumes"),
    _Check("runAsNonRoot", "restricted", _check_run_as_non_root),
    _Check("runAsUser", "restricted", _check_run_as_user),
    _Check("seLinuxOptions", "baseline", _check_selinux),
    _Check("seccompProfile_baseline", "baseline", _check_seccomp_baseline),
    _Check("seccompProfile_restricted", "restricted", _check_seccomp_restricted, "seccompProfile_baseline"),
    _Check("sysctls", "baseline", _check_sysctls),
    _Check("windowsHostProcess", "baseline", _check_host_process),
)


def _checks_for(level: str) -> list[_Check]:
    """Baseline checks by ID, then (for restricted) restricted checks by ID, minus the ones they override."""
    baseline = [c for c in _CHECKS if c.level == "baseline"]
    if level != "restricted":
        return baseline
    restricted = [c for c in _CHECKS if c.level == "restricted"]
    overridden = {c.overrides for c in restricted}
    return [c for c in baseline if c.id not in overridden] + restricted


def pod_security_violations(level: str, pod: dict[str, Any]) -> list[str]:
    """``reason (detail)`` for each check of ``level`` the pod fails, in the real order."""
    if level == "privileged":
        return []
    meta, spec = _dict(pod.get("metadata")), _dict(pod.get("spec"))
    out = []
    for check in _checks_for(level):
        result = check.run(meta, spec)
        if result is not None:
            reason, detail = result
            out.append(f"{reason} ({detail})" if detail else reason)
    return out


def namespace_policy(namespace: dict[str, Any] | None) -> tuple[str, str]:
    """(level, version) enforced in a namespace; an unknown level enforces restricted, like the real one."""
    labels = _dict(_dict((namespace or {}).get("metadata")).get("labels"))
    level = labels.get(ENFORCE_LABEL, "privileged")
    if level not in LEVELS:
        level = "restricted"
    version = labels.get(ENFORCE_VERSION_LABEL, "latest")
    valid_version = version == "latest" or (
        version.startswith("v1.") and version[3:].isdigit() and len(version) <= 6
    )
    return level, version if valid_version else "latest"


def _images(pod: dict[str, Any]) -> list[Any]:
    return [c.get("image") for c in _containers(_dict(pod.get("spec")))]


def _pod_security(
    store: StoreView, operation: str, namespace: str, pod: dict[str, Any], old: dict[str, Any] | None
) -> None:
    if operation == "UPDATE" and old is not None and _images(pod) == _images(old):
        return
    level, version = namespace_policy(store.get("", "namespaces", None, namespace))
    violations = pod_security_violations(level, pod)
    if violations:
        name = str(_dict(pod.get("metadata")).get("name") or "")
        raise errors.forbidden(
            f"{_forbidden_subject('pods', name)}: violates PodSecurity "
            f'"{level}:{version}": {", ".join(violations)}',
            "",
            "pods",
            name or None,
        )


def _forbidden_subject(resource: str, name: str) -> str:
    return f'{resource} "{name}" is forbidden' if name else f"{resource} is forbidden"


# ---------------------------------------------------------------------------------------------
# ResourceQuota
# ---------------------------------------------------------------------------------------------

ResourceList = dict[str, Quantity]

_COMPUTE = ("cpu", "memory", "ephemeral-storage")
# Quota on these makes every container state the matching request or limit (a historical rule).
_MUST_SPECIFY = ("cpu", "limits.cpu", "limits.memory", "memory", "requests.cpu", "requests.memory")
_LEGACY_COUNTS = {
    "pods": "pods",
    "services": "services",
    "secrets": "secrets",
    "configmaps": "configmaps",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "resourcequotas": "resourcequotas",
    "replicationcontrollers": "replicationcontrollers",
}


def _q(value: Any) -> Quantity | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _parse_list(raw: Any) -> ResourceList:
    out = {}
    for key, value in _dict(raw).items():
        quantity = _q(value)
        if quantity is not None:
            out[key] = quantity
    return out


def _add(a: ResourceList, b: ResourceList) -> ResourceList:
    """Sum keeping the first operand's format, as the real ``quota.Add``."""
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key] + value if key in out else value
    return out


def _max(a: ResourceList, b: ResourceList) -> ResourceList:
    out = dict(a)
    for key, value in b.items():
        if key not in out or value > out[key]:
            out[key] = value
    return out


def _container_resources(container: dict[str, Any]) -> tuple[ResourceList, ResourceList]:
    """(requests, limits), requests defaulted from limits as the real defaulting does."""
    resources = _dict(container.get("resources"))
    limits = _parse_list(resources.get("limits"))
    requests = {**limits, **_parse_list(resources.get("requests"))}
    return requests, limits


def _pod_totals(spec: dict[str, Any]) -> tuple[ResourceList, ResourceList]:
    """The pod's effective requests and limits: max(sum of containers, largest init container) + overhead."""
    totals: list[ResourceList] = []
    for index in (0, 1):
        summed: ResourceList = {}
        for container in map(_dict, _list(spec.get("containers"))):
            summed = _add(summed, _container_resources(container)[index])
        for container in map(_dict, _list(spec.get("initContainers"))):
            summed = _max(summed, _container_resources(container)[index])
        totals.append(_add(summed, _parse_list(spec.get("overhead"))))
    return totals[0], totals[1]


def _pod_compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    usage: ResourceList = {}
    for name in _COMPUTE:
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-") or "/" in name:
            usage[f"requests.{name}"] = value
            if name.startswith("hugepages-"):
                usage[name] = value
    return usage


def _pod_counts(pod: dict[str, Any]) -> bool:
    """Pods that still hold quota: not finished, and not past their deletion grace period."""
    if _dict(pod.get("status")).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = _dict(pod.get("metadata"))
    deletion = meta.get("deletionTimestamp")
    grace = meta.get("deletionGracePeriodSeconds")
    if isinstance(deletion, str) and isinstance(grace, int):
        try:
            deadline = datetime.datetime.fromisoformat(deletion.replace("Z", "+00:00"))
        except ValueError:
            return True
        return datetime.datetime.now(datetime.UTC) <= deadline + datetime.timedelta(seconds=grace)
    return True


# Usage of stored pods by (uid, resourceVersion): quota admission sums every pod of the namespace.
_POD_USAGE_CACHE: dict[tuple[str, str], ResourceList] = {}
_POD_USAGE_CACHE_SIZE = 50_000


def _pod_usage(pod: dict[str, Any]) -> ResourceList:
    if not _pod_counts(pod):
        return {}
    meta = _dict(pod.get("metadata"))
    key = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
    if all(key) and key in _POD_USAGE_CACHE:
        return _POD_USAGE_CACHE[key]
    one = parse_quantity("1")
    requests, limits = _pod_totals(_dict(pod.get("spec")))
    usage = {"pods": one, "count/pods": one, **_pod_compute_usage(requests, limits)}
    if all(key):
        if len(_POD_USAGE_CACHE) >= _POD_USAGE_CACHE_SIZE:
            _POD_USAGE_CACHE.clear()
        _POD_USAGE_CACHE[key] = usage
    return usage


def _storage_class(store: StoreView, pvc: dict[str, Any]) -> str:
    name = _dict(pvc.get("spec")).get("storageClassName")
    if name is not None:
        return str(name)
    for storage_class in store.list("storage.k8s.io", "storageclasses"):
        annotations = _dict(_dict(storage_class.get("metadata")).get("annotations"))
        if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            return str(_dict(storage_class.get("metadata")).get("name", ""))
    return ""


def _pvc_usage(store: StoreView, pvc: dict[str, Any]) -> ResourceList:
    one = parse_quantity("1")
    usage = {"persistentvolumeclaims": one, "count/persistentvolumeclaims": one}
    storage_class = _storage_class(store, pvc)
    if storage_class:
        usage[f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims"] = one
    request = _q(_dict(_dict(_dict(pvc.get("spec")).get("resources")).get("requests")).get("storage"))
    if request is not None:
        usage["requests.storage"] = request
        if storage_class:
            usage[f"{storage_class}.storageclass.storage.k8s.io/requests.storage"] = request
    return usage


def _count_key(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def _object_usage(store: StoreView, group: str, kind: str, plural: str, obj: dict[str, Any]) -> ResourceList:
    if group == "" and kind == "Pod":
        return _pod_usage(obj)
    if group == "" and kind == "PersistentVolumeClaim":
        return _pvc_usage(store, obj)
    one = parse_quantity("1")
    usage = {_count_key(group, plural): one}
    if group == "" and plural in _LEGACY_COUNTS:
        usage[_LEGACY_COUNTS[plural]] = one
    return usage


def _is_best_effort(spec: dict[str, Any]) -> bool:
    for container in _containers(spec):
        requests, limits = _container_resources(container)
        if any(name in requests or name in limits for name in ("cpu", "memory")):
            return False
    return True


def _scope_matches(scope: str, operator: str, values: list[Any], pod: dict[str, Any]) -> bool:
    spec = _dict(pod.get("spec"))
    if scope == "PriorityClass":
        priority_class = spec.get("priorityClassName") or ""
        return {
            "In": priority_class in values,
            "NotIn": priority_class not in values,
            "Exists": bool(priority_class),
            "DoesNotExist": not priority_class,
        }.get(operator, False)
    matched = {
        "Terminating": spec.get("activeDeadlineSeconds") is not None,
        "NotTerminating": spec.get("activeDeadlineSeconds") is None,
        "BestEffort": _is_best_effort(spec),
        "NotBestEffort": not _is_best_effort(spec),
    }.get(scope, False)
    return matched if operator in ("", "Exists") else not matched


def _quota_scopes(quota_spec: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    scopes = [(str(scope), "Exists", []) for scope in _list(quota_spec.get("scopes"))]
    for expression in map(_dict, _list(_dict(quota_spec.get("scopeSelector")).get("matchExpressions"))):
        scopes.append(
            (
                str(expression.get("scopeName", "")),
                str(expression.get("operator", "")),
                _list(expression.get("values")),
            )
        )
    return scopes


def _quota_matches(quota: dict[str, Any], group: str, kind: str, obj: dict[str, Any]) -> bool:
    scopes = _quota_scopes(_dict(quota.get("spec")))
    if not scopes:
        return True
    if group != "" or kind != "Pod":
        return False
    return all(_scope_matches(scope, operator, values, obj) for scope, operator, values in scopes)


def _namespace_usage(
    store: StoreView, namespace: str, group: str, kind: str, plural: str, quota: dict[str, Any]
) -> ResourceList:
    used: ResourceList = {}
    for obj in store.list(group, plural, namespace):
        if _quota_matches(quota, group, kind, obj):
            used = _add(used, _object_usage(store, group, kind, plural, obj))
    return used


_USAGE_KINDS = (("", "Pod", "pods"), ("", "PersistentVolumeClaim", "persistentvolumeclaims"))


def quota_usage(store: StoreView, namespace: str) -> dict[str, dict[str, str]]:
    """``status.used`` of every quota in ``namespace``: each hard resource with its current usage."""
    out = {}
    for quota in store.list("", "resourcequotas", namespace):
        hard = _parse_list(_dict(quota.get("spec")).get("hard"))
        used: ResourceList = {}
        for group, kind, plural in _counted_kinds(hard):
            used = _add(used, _namespace_usage(store, namespace, group, kind, plural, quota))
        name = str(_dict(quota.get("metadata")).get("name", ""))
        out[name] = {key: str(used.get(key, ZERO)) for key in sorted(hard)}
    return out


def _counted_kinds(hard: ResourceList) -> list[tuple[str, str, str]]:
    """The served kinds whose objects a quota with these hard resources counts."""
    kinds = list(_USAGE_KINDS)
    for key in hard:
        plural, group = "", ""
        if key.startswith("count/"):
            plural, _, group = key[len("count/") :].partition(".")
        elif key in _LEGACY_COUNTS:
            plural = key
        resource_type = by_group_plural(group, plural)
        if resource_type is not None and (group, resource_type.kind, plural) not in kinds:
            kinds.append((group, resource_type.kind, plural))
    return kinds


_POD_RESOURCES = frozenset(
    {
        "pods",
        "count/pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
    }
)
_PVC_RESOURCES = frozenset({"persistentvolumeclaims", "count/persistentvolumeclaims", "requests.storage"})
_STORAGE_CLASS_SUFFIXES = (
    ".storageclass.storage.k8s.io/requests.storage",
    ".storageclass.storage.k8s.io/persistentvolumeclaims",
)


def _matching_resources(group: str, kind: str, plural: str, hard: ResourceList) -> set[str]:
    """The hard resources a kind's quota evaluator is responsible for (even if this object uses none)."""
    if group == "" and kind == "Pod":
        return {
            key
            for key in hard
            if key in _POD_RESOURCES
            or key.startswith(("requests.hugepages-", "hugepages-"))
            or (key.startswith("requests.") and "/" in key)
        }
    if group == "" and kind == "PersistentVolumeClaim":
        return {key for key in hard if key in _PVC_RESOURCES or key.endswith(_STORAGE_CLASS_SUFFIXES)}
    names = {_count_key(group, plural)} | (
        {_LEGACY_COUNTS[plural]} if not group and plural in _LEGACY_COUNTS else set()
    )
    return names & set(hard)


def _must_specify(requested: list[str], spec: dict[str, Any]) -> str:
    """The real pod quota constraint: each container must set what cpu/memory quotas count."""
    missing: dict[str, set[str]] = {}
    for field in ("containers", "initContainers"):
        for container in map(_dict, _list(spec.get(field))):
            requests, limits = _container_resources(container)
            present = set(_pod_compute_usage(requests, limits))
            for resource in requested:
                if resource not in present:
                    missing.setdefault(resource, set()).add(str(container.get("name", "")))
    return "; ".join(
        f"{resource} for: {','.join(sorted(names))}" for resource, names in sorted(missing.items())
    )


def _pretty(resources: ResourceList) -> str:
    return ",".join(f"{key}={resources[key]}" for key in sorted(resources))


def _resource_quota(
    store: StoreView,
    operation: str,
    group: str,
    version: str,
    kind: str,
    namespace: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
) -> None:
    is_pvc = group == "" and kind == "PersistentVolumeClaim"
    if operation != "CREATE" and not (operation == "UPDATE" and is_pvc):
        return
    resource_type = by_api_version_kind(f"{group}/{version}" if group else version, kind)
    if resource_type is None:
        return
    plural = resource_type.plural
    quotas = sorted(
        store.list("", "resourcequotas", namespace),
        key=lambda q: str(_dict(q.get("metadata")).get("name", "")),
    )
    if not quotas:
        return
    meta = _dict(obj.get("metadata"))
    name = str(meta.get("name") or meta.get("generateName") or "")
    subject = _forbidden_subject(resource_type.key, name)
    interesting = []
    for quota in quotas:
        hard = _parse_list(_dict(quota.get("spec")).get("hard"))
        if not _quota_matches(quota, group, kind, obj) or not _matching_resources(group, kind, plural, hard):
            continue
        interesting.append((quota, hard))
        quota_name = _dict(quota.get("metadata")).get("name", "")
        if group == "" and kind == "Pod":
            missing = _must_specify(sorted(set(hard) & set(_MUST_SPECIFY)), _dict(obj.get("spec")))
            if missing:
                raise errors.forbidden(
                    f"{subject}: failed quota: {quota_name}: must specify {missing}",
                    group,
                    plural,
                    name or None,
                )
    delta = _object_usage(store, group, kind, plural, obj)
    if old is not None and operation == "UPDATE":
        previous = _object_usage(store, group, kind, plural, old)
        delta = {key: value - previous.get(key, ZERO) for key, value in delta.items()}
        delta = {key: value for key, value in delta.items() if value.value > 0}
    for quota, hard in interesting:
        used = _namespace_usage(store, namespace, group, kind, plural, quota)
        requested = {key: value for key, value in delta.items() if key in hard}
        exceeded = sorted(key for key, value in requested.items() if used.get(key, ZERO) + value > hard[key])
        if exceeded:
            quota_name = _dict(quota.get("metadata")).get("name", "")
            raise errors.forbidden(
                f"{subject}: exceeded quota: {quota_name}, "
                f"requested: {_pretty({key: requested[key] for key in exceeded})}, "
                f"used: {_pretty({key: used.get(key, ZERO) for key in exceeded})}, "
                f"limited: {_pretty({key: hard[key] for key in exceeded})}",
                group,
                plural,
                name or None,
            )
