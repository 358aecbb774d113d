"""The registry of resource kinds the simulated API server serves.

Discovery, routing, RBAC and the store all read this one table, so a kind added here is served
everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import APIError

_READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _READ_WRITE
    categories: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def key(self) -> str:
        """``plural`` for core, ``plural.group`` otherwise (the form RBAC and errors use)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _rt(group: str, version: str, kind: str, plural: str, namespaced: bool, **kw) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, singular=kind.lower(), **kw)


RESOURCES: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        subresources=("status",),
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _rt("", "v1", "Node", "nodes", False, subresources=("status",), short_names=("no",)),
    _rt(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        subresources=("status", "log"),
        short_names=("po",),
        categories=("all",),
    ),
    _rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        subresources=("status",),
        short_names=("pvc",),
    ),
    _rt("", "v1", "Secret", "secrets", True),
    _rt("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
    _rt("", "v1", "Event", "events", True, short_names=("ev",)),
    _rt(
        "",
        "v1",
        "Service",
        "services",
        True,
        subresources=("status",),
        short_names=("svc",),
        categories=("all",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=("sa",)),
    _rt("", "v1", "ResourceQuota", "resourcequotas", True, subresources=("status",), short_names=("quota",)),
    _rt("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short_names=("sc",)),
    _rt("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    _rt("events.k8s.io", "v1", "Event", "events", True, short_names=("ev",)),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
    ),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
    ),
    _rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        subresources=("status",),
        short_names=("deploy",),
        categories=("all",),
    ),
    _rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, short_names=("netpol",)),
    _rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        subresources=("status",),
        short_names=("ing",),
    ),
    _rt("coordination.k8s.io", "v1", "Lease", "leases", True),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _rt(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=("create",),
    ),
)

_BY_GROUP_PLURAL = {(r.group, r.plural): r for r in RESOURCES}
_BY_KEY = {r.key: r for r in RESOURCES}
_BY_GVK = {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(resource: str) -> ResourceType:
    """Find a kind by ``plural`` (core) or ``plural.group``, e.g. ``leases.coordination.k8s.io``."""
    try:
        return _BY_KEY[resource]
    except KeyError:
        raise APIError(
            404, "NotFound", f"the server could not find the requested resource ({resource})"
        ) from None


def by_group_plural(group: str, plural: str) -> ResourceType | None:
    return _BY_GROUP_PLURAL.get((group, plural))


def by_api_version_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_GVK.get((api_version, kind))


def groups() -> dict[str, list[ResourceType]]:
    """Resource kinds per API group ("" is core), in registry order."""
    out: dict[str, list[ResourceType]] = {}
    for r in RESOURCES:
        out.setdefault(r.group, []).append(r)
    return out
