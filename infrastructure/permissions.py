"""The one list of Kubernetes permissions the product needs, with the reason for each.

Both the RBAC manifests the product ships and the readiness check's SelfSubjectAccessReviews are generated
from :data:`NAMESPACED_RULES` and :data:`CLUSTER_RULES`, so what is granted and what is checked can never
drift apart. (Creating SelfSubjectAccessReviews needs no rule: every authenticated user may.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infrastructure.labels import APP_NAME, LABEL_MANAGED_BY, LABEL_NAME

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
ACCESS_REVIEW_API_VERSION = "authorization.k8s.io/v1"


@dataclass(frozen=True)
class Rule:
    """Verbs on one resource (``pods/log`` style for subresources) of one API group (``""`` is core)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    reason: str

    @property
    def base_resource(self) -> str:
        return self.resource.partition("/")[0]

    @property
    def subresource(self) -> str:
        return self.resource.partition("/")[2]

    def policy_rule(self) -> dict[str, Any]:
        """The RBAC ``PolicyRule`` granting this rule."""
        return {"apiGroups": [self.api_group], "resources": [self.resource], "verbs": list(self.verbs)}


# In the environments namespace.
NAMESPACED_RULES: tuple[Rule, ...] = (
    Rule(
        "",
        "pods",
        ("get", "list", "watch", "create", "delete"),
        "Create, watch and delete the environments' pods; the readiness check dry-run-creates the "
        "supervising pod to prove privileged pods and hostPath mounts are allowed.",
    ),
    Rule("", "pods/log", ("get",), "Follow a building environment's log."),
    Rule("", "pods/status", ("get",), "Read a pod's status (phase, conditions, termination message)."),
    Rule(
        "",
        "pods/exec",
        ("create", "get"),
        "Open the browser terminal; WebSocket exec is authorised as get on older API servers and as "
        "create on newer ones.",
    ),
    Rule(
        "",
        "persistentvolumeclaims",
        ("get", "list", "create", "delete"),
        "Create and delete each environment's volume; the reconciler lists them to fix drift.",
    ),
    Rule(
        "",
        "secrets",
        ("get", "list", "create", "patch", "delete"),
        "Registry credentials for the inner image, mounted as a Secret; patched to add the pod as owner.",
    ),
    Rule(
        "networking.k8s.io",
        "networkpolicies",
        ("get", "list", "create", "delete"),
        "One NetworkPolicy per environment that denies ingress and blocks the cloud metadata address.",
    ),
    Rule("", "events", ("list", "watch"), "The watcher turns pod events into environment events."),
    Rule(
        "events.k8s.io",
        "events",
        ("list", "watch"),
        "The same events through the newer events API, which some clients use.",
    ),
    Rule(
        "coordination.k8s.io",
        "leases",
        ("get", "create", "update"),
        "Leader election: only one watcher and one Celery beat (the reconciler's clock) act at a time.",
    ),
)

# Cluster-scoped reads the readiness checks need.
CLUSTER_RULES: tuple[Rule, ...] = (
    Rule("", "nodes", ("get", "list"), "Check each node's kernel, OS image, runtime, labels and capacity."),
    Rule(
        "",
        "pods",
        ("list",),
        "Sum the resources requested on each node across all namespaces to report spare capacity.",
    ),
    Rule("", "namespaces", ("get",), "Check that the environments namespace exists and read its labels."),
    Rule(
        "storage.k8s.io",
        "storageclasses",
        ("get", "list"),
        "Check that the configured storage class exists, or find the cluster's default one.",
    ),
    Rule("node.k8s.io", "runtimeclasses", ("get",), "Check that the sysbox-runc RuntimeClass exists."),
    Rule(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("list",),
        "Find sidecar-injection webhooks (Istio and others) that would reach the environments.",
    ),
    Rule(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("list",),
        "Find admission policies that would reject the environments' pods.",
    ),
)

# Only when the admin lets the product create the environments namespace for them.
NAMESPACE_CREATE_RULE = Rule(
    "", "namespaces", ("create",), "Create the environments namespace when the admin asks for it."
)


def namespaced_rules() -> tuple[Rule, ...]:
    """Rules granted by a Role in the environments namespace."""
    return NAMESPACED_RULES


def cluster_rules(allow_namespace_create: bool = False) -> tuple[Rule, ...]:
    """Rules granted by a ClusterRole; namespace creation only when that action is offered."""
    if allow_namespace_create:
        return (*CLUSTER_RULES, NAMESPACE_CREATE_RULE)
    return CLUSTER_RULES


def _metadata(name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {LABEL_NAME: APP_NAME, LABEL_MANAGED_BY: APP_NAME}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def role_manifest(namespace: str, name: str) -> dict[str, Any]:
    """The Role with every namespaced rule, in the environments namespace."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": _metadata(name, namespace),
        "rules": [rule.policy_rule() for rule in namespaced_rules()],
    }


def cluster_role_manifest(name: str, allow_namespace_create: bool = False) -> dict[str, Any]:
    """The ClusterRole with the cluster-scoped reads of the readiness checks."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": _metadata(name),
        "rules": [rule.policy_rule() for rule in cluster_rules(allow_namespace_create)],
    }


def _subjects(service_account: str, service_account_namespace: str) -> list[dict[str, str]]:
    return [{"kind": "ServiceAccount", "name": service_account, "namespace": service_account_namespace}]


def role_binding_manifest(
    namespace: str, name: str, service_account: str, service_account_namespace: str
) -> dict[str, Any]:
    """Bind the Role ``name`` to the product's service account (which may live in another namespace)."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": _metadata(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": _subjects(service_account, service_account_namespace),
    }


def cluster_role_binding_manifest(
    name: str, service_account: str, service_account_namespace: str
) -> dict[str, Any]:
    """Bind the ClusterRole ``name`` to the product's service account."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": _subjects(service_account, service_account_namespace),
    }


def rbac_manifests(
    environments_namespace: str,
    service_account: str,
    service_account_namespace: str,
    name: str = APP_NAME,
    allow_namespace_create: bool = False,
) -> list[dict[str, Any]]:
    """Role, RoleBinding, ClusterRole and ClusterRoleBinding for the product's service account."""
    return [
        role_manifest(environments_namespace, name),
        role_binding_manifest(environments_namespace, name, service_account, service_account_namespace),
        cluster_role_manifest(name, allow_namespace_create),
        cluster_role_binding_manifest(name, service_account, service_account_namespace),
    ]


@dataclass(frozen=True)
class AccessReview:
    """One verb on one resource to ask the API server about, and why the product needs it."""

    rule: Rule
    verb: str
    attributes: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The SelfSubjectAccessReview to create."""
        return {
            "apiVersion": ACCESS_REVIEW_API_VERSION,
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": dict(self.attributes)},
        }


def _attributes(rule: Rule, verb: str, namespace: str | None) -> dict[str, str]:
    attributes = {"verb": verb, "group": rule.api_group, "resource": rule.base_resource}
    if rule.subresource:
        attributes["subresource"] = rule.subresource
    if namespace is not None:
        attributes["namespace"] = namespace
    return attributes


def access_reviews(namespace: str, allow_namespace_create: bool = False) -> list[AccessReview]:
    """One review per verb of every rule: namespaced ones in ``namespace``, the rest cluster-wide."""
    reviews = [
        AccessReview(rule, verb, _attributes(rule, verb, namespace))
        for rule in namespaced_rules()
        for verb in rule.verbs
    ]
    reviews.extend(
        AccessReview(rule, verb, _attributes(rule, verb, None))
        for rule in cluster_rules(allow_namespace_create)
        for verb in rule.verbs
    )
    return reviews


def access_review_requests(namespace: str, allow_namespace_create: bool = False) -> list[dict[str, str]]:
    """The ``spec.resourceAttributes`` of every SelfSubjectAccessReview the readiness check sends."""
    return [review.attributes for review in access_reviews(namespace, allow_namespace_create)]
