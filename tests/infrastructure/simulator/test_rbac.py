"""RBAC authorisation over Roles and bindings, with the real 403 messages and SSAR reasons."""

from __future__ import annotations

from typing import Any

import pytest

from infrastructure.simulator.errors import APIError
from infrastructure.simulator.rbac import RBAC_GROUP, UserInfo, allowed, authorize, rule_allows

from .test_admission import FakeStore

SA = UserInfo(
    "system:serviceaccount:team:builder",
    ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"),
)
ALICE = UserInfo("alice", ("devs", "system:authenticated"))


def rule(verbs: list[str], resources: list[str], groups: list[str] | None = None, **extra: Any) -> dict:
    return {"verbs": verbs, "resources": resources, "apiGroups": [""] if groups is None else groups, **extra}


def role(name: str, *rules: dict, ns: str | None = "team", labels: dict | None = None, **extra: Any) -> tuple:
    plural = "roles" if ns else "clusterroles"
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if ns:
        meta["namespace"] = ns
    return RBAC_GROUP, plural, {"metadata": meta, "rules": list(rules), **extra}


def bind(name: str, ref_kind: str, ref_name: str, *subjects: dict, ns: str | None = "team") -> tuple:
    plural = "rolebindings" if ns else "clusterrolebindings"
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    body = {"metadata": meta, "roleRef": {"apiGroup": RBAC_GROUP, "kind": ref_kind, "name": ref_name}}
    return RBAC_GROUP, plural, {**body, "subjects": list(subjects)}


def sa(name: str = "builder", namespace: str | None = "team") -> dict:
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace:
        subject["namespace"] = namespace
    return subject


def user(name: str) -> dict:
    return {"kind": "User", "name": name, "apiGroup": RBAC_GROUP}


def group(name: str) -> dict:
    return {"kind": "Group", "name": name, "apiGroup": RBAC_GROUP}


def denied(
    store: FakeStore, who: UserInfo, verb: str, grp: str, resource: str, sub: str, ns: str | None, name
):
    with pytest.raises(APIError) as excinfo:
        authorize(store, who, verb, grp, resource, sub, ns, name)
    assert excinfo.value.code == 403
    assert excinfo.value.reason == "Forbidden"
    return excinfo.value


def test_the_real_namespaced_message():
    error = denied(FakeStore(), SA, "create", "", "pods", "", "team", None)
    assert error.message == (
        'pods is forbidden: User "system:serviceaccount:team:builder" cannot create resource "pods" in API '
        "group "
        '"" in the namespace "team"'
    )
    assert error.details == {"kind": "pods"}


def test_the_real_message_with_a_name_a_group_and_a_subresource():
    error = denied(FakeStore(), ALICE, "get", "", "pods", "log", "team", "web")
    assert error.message == (
        'pods "web" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the '
        'namespace "team"'
    )
    assert error.details == {"name": "web", "kind": "pods"}
    error = denied(FakeStore(), ALICE, "delete", "coordination.k8s.io", "leases", "", "team", "lock")
    assert error.message.startswith(
        'leases.coordination.k8s.io "lock" is forbidden: User "alice" cannot delete'
    )
    assert error.details == {"name": "lock", "group": "coordination.k8s.io", "kind": "leases"}


def test_the_real_cluster_scope_message():
    error = denied(FakeStore(), ALICE, "list", "", "nodes", "", None, None)
    assert error.message == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'
    )


def test_system_masters_bypass_rbac():
    admin = UserInfo("admin", ("system:masters",))
    authorize(FakeStore(), admin, "delete", "", "nodes", "", None, "n1")
    assert allowed(FakeStore(), admin, "delete", "", "nodes", "", None, "n1") == (True, "")


def test_a_role_binding_grants_its_role_in_its_namespace_only():
    store = FakeStore(role("pods", rule(["get", "list"], ["pods"])), bind("b", "Role", "pods", sa()))
    authorize(store, SA, "list", "", "pods", "", "team", None)
    assert allowed(store, SA, "get", "", "pods", "", "team", "web") == (
        True,
        'RBAC: allowed by RoleBinding "b/team" of Role "pods" to ServiceAccount "builder/team"',
    )
    denied(store, SA, "delete", "", "pods", "", "team", "web")
    denied(store, SA, "list", "", "pods", "", "other", None)
    denied(store, SA, "list", "", "pods", "", None, None)
    assert allowed(store, SA, "list", "", "secrets", "", "team", None) == (False, "")


def test_a_cluster_role_through_a_role_binding_is_scoped_to_the_namespace():
    store = FakeStore(
        role("reader", rule(["get"], ["*"], ["*"]), ns=None),
        bind("b", "ClusterRole", "reader", user("alice")),
    )
    authorize(store, ALICE, "get", "apps", "deployments", "", "team", "d")
    denied(store, ALICE, "get", "", "pods", "", "other", "p")
    denied(store, ALICE, "get", "", "nodes", "", None, "n")


def test_a_cluster_role_binding_applies_everywhere():
    store = FakeStore(
        role("nodes", rule(["list", "watch"], ["nodes", "pods"]), ns=None),
        bind("all", "ClusterRole", "nodes", group("devs"), ns=None),
    )
    authorize(store, ALICE, "watch", "", "nodes", "", None, None)
    authorize(store, ALICE, "list", "", "pods", "", "any", None)
    assert allowed(store, ALICE, "list", "", "nodes", "", None, None) == (
        True,
        'RBAC: allowed by ClusterRoleBinding "all" of ClusterRole "nodes" to Group "devs"',
    )
    denied(store, UserInfo("bob"), "list", "", "nodes", "", None, None)


def test_service_account_subjects_default_to_the_binding_namespace():
    store = FakeStore(role("r", rule(["get"], ["pods"])), bind("b", "Role", "r", sa(namespace=None)))
    authorize(store, SA, "get", "", "pods", "", "team", "p")
    other = UserInfo("system:serviceaccount:other:builder")
    denied(store, other, "get", "", "pods", "", "team", "p")


def test_service_account_groups_work_as_subjects():
    store = FakeStore(
        role("r", rule(["get"], ["pods"]), ns=None),
        bind("b", "ClusterRole", "r", group("system:serviceaccounts:team"), ns=None),
    )
    authorize(store, SA, "get", "", "pods", "", "x", "p")


def test_missing_roles_and_unknown_subjects_grant_nothing():
    store = FakeStore(
        bind("b", "Role", "missing", sa()),
        bind("c", "ClusterRole", "missing", user("alice"), ns=None),
        bind("d", "Role", "r", {"kind": "Robot", "name": "alice"}),
        role("r", rule(["*"], ["*"], ["*"])),
    )
    denied(store, SA, "get", "", "pods", "", "team", "p")
    denied(store, ALICE, "get", "", "pods", "", "team", "p")


@pytest.mark.parametrize(
    ("policy", "request_", "expected"),
    [
        (rule(["*"], ["pods"]), ("deletecollection", "", "pods", "", ""), True),
        (rule(["get"], ["*"], ["*"]), ("get", "apps", "deployments", "scale", ""), True),
        (rule(["get"], ["pods"]), ("get", "", "pods", "log", ""), False),
        (rule(["get"], ["pods/log"]), ("get", "", "pods", "log", ""), True),
        (rule(["get"], ["pods/log"]), ("get", "", "pods", "", ""), False),
        (rule(["get"], ["*/log"]), ("get", "", "pods", "log", ""), True),
        (rule(["get"], ["*/log"]), ("get", "", "pods", "", ""), False),
        (rule(["get"], ["*/status"]), ("get", "", "pods", "log", ""), False),
        (rule(["get"], ["pods"], ["apps"]), ("get", "", "pods", "", ""), False),
        (
            rule(["get"], ["leases"], ["coordination.k8s.io"]),
            ("get", "coordination.k8s.io", "leases", "", ""),
            True,
        ),
        (rule(["get"], ["pods"], resourceNames=["a"]), ("get", "", "pods", "", "a"), True),
        (rule(["get"], ["pods"], resourceNames=["a"]), ("get", "", "pods", "", "b"), False),
        (rule(["list"], ["pods"], resourceNames=["a"]), ("list", "", "pods", "", ""), False),
        ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, ("get", "", "pods", "", ""), False),
    ],
)
def test_rule_matching(policy, request_, expected):
    verb, grp, resource, sub, name = request_
    assert rule_allows(policy, verb, grp, resource, sub, name) is expected


def test_aggregated_cluster_roles_take_the_rules_of_matching_roles():
    store = FakeStore(
        role(
            "aggregate",
            ns=None,
            aggregationRule={
                "clusterRoleSelectors": [
                    {"matchLabels": {"rbac.example.com/aggregate-to-viewer": "true"}},
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]},
                ]
            },
        ),
        role(
            "pods", rule(["get"], ["pods"]), ns=None, labels={"rbac.example.com/aggregate-to-viewer": "true"}
        ),
        role("leases", rule(["get"], ["leases"], ["*"]), ns=None, labels={"tier": "gold"}),
        role("secrets", rule(["get"], ["secrets"]), ns=None, labels={"tier": "silver"}),
        bind("b", "ClusterRole", "aggregate", user("alice"), ns=None),
    )
    authorize(store, ALICE, "get", "", "pods", "", "team", "p")
    authorize(store, ALICE, "get", "coordination.k8s.io", "leases", "", "team", "l")
    denied(store, ALICE, "get", "", "secrets", "", "team", "s")


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "a", "operator": "NotIn", "values": ["x"]}, {"a": "y"}, True),
        ({"key": "a", "operator": "NotIn", "values": ["x"]}, {"a": "x"}, False),
        ({"key": "a", "operator": "Exists"}, {"a": ""}, True),
        ({"key": "a", "operator": "DoesNotExist"}, {"a": ""}, False),
        ({"key": "a", "operator": "Near"}, {"a": ""}, False),
    ],
)
def test_aggregation_selector_operators(expression, labels, expected):
    store = FakeStore(
        role("agg", ns=None, aggregationRule={"clusterRoleSelectors": [{"matchExpressions": [expression]}]}),
        role("pods", rule(["get"], ["pods"]), ns=None, labels=labels),
        bind("b", "ClusterRole", "agg", user("alice"), ns=None),
    )
    assert allowed(store, ALICE, "get", "", "pods", "", "team", "p")[0] is expected
