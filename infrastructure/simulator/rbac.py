"""Authentication and RBAC authorisation of the simulated API server.

Interface used by the server:
- ``UserInfo(username, groups)``.
- ``authorize(store, user, verb, group, resource, subresource, namespace, name) -> None``: raise
  ``APIError`` 403 with the real message: ``<kind> "<name>" is forbidden: User "<u>" cannot <verb>
  resource "<resource>" in API group "<group>" in the namespace "<ns>"`` (shape varies by scope).
- ``allowed(...) -> tuple[bool, str]`` for SelfSubjectAccessReview.

The rules are evaluated as the real RBAC authorizer does (ClusterRoleBindings everywhere,
RoleBindings in their namespace, ``*`` wildcards, ``*/subresource``, resourceNames, aggregated
ClusterRoles), so the product's own RBAC manifest can be proven against the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .views import StoreView

RBAC_GROUP = "rbac.authorization.k8s.io"
SUPERUSER_GROUP = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    username: str
    groups: tuple[str, ...] = field(default_factory=tuple)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name(obj: dict[str, Any]) -> str:
    return str(_dict(obj.get("metadata")).get("name", ""))


def _subject_applies(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.username == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.username == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return False


def _describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name")}/{namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def _matches_labels(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions) against an object's labels."""
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in map(_dict, _list(selector.get("matchExpressions"))):
        key, operator, values = (
            expression.get("key"),
            expression.get("operator"),
            _list(expression.get("values")),
        )
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(str(operator), False)
        if not ok:
            return False
    return True


def _cluster_role_rules(store: StoreView, name: str) -> list[dict[str, Any]]:
    role = store.get(RBAC_GROUP, "clusterroles", None, name)
    if role is None:
        return []
    selectors = _list(_dict(role.get("aggregationRule")).get("clusterRoleSelectors"))
    if not selectors:
        return [_dict(rule) for rule in _list(role.get("rules"))]
    rules: list[dict[str, Any]] = []
    for other in store.list(RBAC_GROUP, "clusterroles"):
        labels = _dict(_dict(other.get("metadata")).get("labels"))
        if _name(other) != name and any(_matches_labels(_dict(s), labels) for s in selectors):
            rules.extend(_dict(rule) for rule in _list(other.get("rules")))
    return rules


def _role_rules(store: StoreView, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    if ref.get("kind") == "ClusterRole":
        return _cluster_role_rules(store, str(ref.get("name", "")))
    if ref.get("kind") == "Role" and namespace:
        role = store.get(RBAC_GROUP, "roles", namespace, str(ref.get("name", "")))
        return [_dict(rule) for rule in _list((role or {}).get("rules"))]
    return []


def _applicable_rules(
    store: StoreView, user: UserInfo, namespace: str | None
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(description of the binding, its rules) for every binding that applies to the user here."""
    for binding in store.list(RBAC_GROUP, "clusterrolebindings"):
        ref = _dict(binding.get("roleRef"))
        for subject in map(_dict, _list(binding.get("subjects"))):
            if _subject_applies(subject, user, ""):
                source = (
                    f'ClusterRoleBinding "{_name(binding)}" of {ref.get("kind")} "{ref.get("name")}" to '
                    f"{_describe_subject(subject, '')}"
                )
                yield source, _role_rules(store, ref, "")
                break
    if not namespace:
        return
    for binding in store.list(RBAC_GROUP, "rolebindings", namespace):
        ref = _dict(binding.get("roleRef"))
        for subject in map(_dict, _list(binding.get("subjects"))):
            if _subject_applies(subject, user, namespace):
                source = (
                    f'RoleBinding "{_name(binding)}/{namespace}" of {ref.get("kind")} "{ref.get("name")}" to '
                    f"{_describe_subject(subject, namespace)}"
                )
                yield source, _role_rules(store, ref, namespace)
                break


def _resource_matches(rule: dict[str, Any], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in _list(rule.get("resources")):
        if candidate in ("*", combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def rule_allows(
    rule: dict[str, Any], verb: str, group: str, resource: str, subresource: str, name: str
) -> bool:
    """One PolicyRule against one resource request, with the real wildcard semantics."""
    verbs, groups = _list(rule.get("verbs")), _list(rule.get("apiGroups"))
    if "*" not in verbs and verb not in verbs:
        return False
    if "*" not in groups and group not in groups:
        return False
    if not _resource_matches(rule, resource, subresource):
        return False
    names = _list(rule.get("resourceNames"))
    return not names or name in names


def allowed(
    store: StoreView,
    user: UserInfo,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str | None,
    name: str | None,
) -> tuple[bool, str]:
    """(allowed, reason) as a SelfSubjectAccessReview reports it."""
    if SUPERUSER_GROUP in user.groups:
        return True, ""
    for source, rules in _applicable_rules(store, user, namespace):
        for rule in rules:
            if rule_allows(rule, verb, group, resource, subresource, name or ""):
                return True, f"RBAC: allowed by {source}"
    return False, ""


def forbidden_message(
    user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str | None
) -> str:
    """The authorizer's part of the 403 message (without the ``<resource> "<name>" is forbidden`` lead)."""
    shown = f"{resource}/{subresource}" if subresource else resource
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'User "{user.username}" cannot {verb} resource "{shown}" in API group "{group}" {scope}'


def authorize(
    store: StoreView,
    user: UserInfo,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str | None,
    name: str | None,
) -> None:
    """Raise the real 403 unless the user's bindings allow this request."""
    ok, _ = allowed(store, user, verb, group, resource, subresource, namespace, name)
    if ok:
        return
    qualified = f"{resource}.{group}" if group else resource
    lead = f'{qualified} "{name}" is forbidden' if name else f"{qualified} is forbidden"
    message = f"{lead}: {forbidden_message(user, verb, group, resource, subresource, namespace)}"
    raise errors.forbidden(message, group, resource, name)
