import functools
from unittest import mock

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from infrastructure.labels import APP_NAME, LABEL_MANAGED_BY
from infrastructure.permissions import (
    CLUSTER_RULES,
    NAMESPACE_CREATE_RULE,
    NAMESPACED_RULES,
    access_review_requests,
    access_reviews,
    cluster_role_binding_manifest,
    cluster_role_manifest,
    cluster_rules,
    namespaced_rules,
    rbac_manifests,
    role_binding_manifest,
    role_manifest,
)

VERSIONS = ["1.30", "1.37"]
NAMESPACE = "coder-envs"


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas():
    """kubernetes-validate re-reads its multi-megabyte definitions file on every call; read each once."""
    cached = functools.cache(kubernetes_validate.utils.schema_contents)
    with mock.patch.object(kubernetes_validate.utils, "schema_contents", cached):
        yield


def _validate(manifest, version):
    kubernetes_validate.validate(manifest, version, strict=True)


def _all_manifests():
    return rbac_manifests(NAMESPACE, "coderadmin", "coderadmin-system", allow_namespace_create=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_rbac_manifests_validate_strict(version):
    manifests = _all_manifests()
    assert [m["kind"] for m in manifests] == ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    for manifest in manifests:
        _validate(manifest, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_access_review_bodies_validate_strict(version):
    for review in access_reviews(NAMESPACE, allow_namespace_create=True):
        _validate(review.body(), version)


def test_strict_validation_catches_a_bad_manifest():
    manifest = role_manifest(NAMESPACE, "x")
    manifest["rules"][0]["verb"] = ["get"]
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(manifest, "1.37")


def _granted(manifest):
    return {
        (group, resource, verb)
        for rule in manifest["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _reviewed(requests, namespaced):
    result = set()
    for attrs in requests:
        if ("namespace" in attrs) != namespaced:
            continue
        resource = attrs["resource"] + (f"/{attrs['subresource']}" if "subresource" in attrs else "")
        result.add((attrs["group"], resource, attrs["verb"]))
    return result


def _expected(rules):
    return {(r.api_group, r.resource, verb) for r in rules for verb in r.verbs}


def test_every_namespaced_rule_is_granted_and_reviewed():
    expected = _expected(NAMESPACED_RULES)
    assert _granted(role_manifest(NAMESPACE, "coderadmin")) == expected
    assert _reviewed(access_review_requests(NAMESPACE), namespaced=True) == expected


@pytest.mark.parametrize("allow_create", [False, True])
def test_every_cluster_rule_is_granted_and_reviewed(allow_create):
    expected = _expected(cluster_rules(allow_create))
    assert _granted(cluster_role_manifest("coderadmin", allow_create)) == expected
    assert _reviewed(access_review_requests(NAMESPACE, allow_create), namespaced=False) == expected


def test_namespace_create_only_when_offered():
    assert ("", "namespaces", "create") not in _granted(cluster_role_manifest("c"))
    assert ("", "namespaces", "create") in _granted(cluster_role_manifest("c", allow_namespace_create=True))
    assert NAMESPACE_CREATE_RULE not in cluster_rules()
    assert cluster_rules(allow_namespace_create=True)[-1] == NAMESPACE_CREATE_RULE


def test_one_review_per_verb_and_resource():
    requests = access_review_requests(NAMESPACE)
    keys = [tuple(sorted(a.items())) for a in requests]
    assert len(keys) == len(set(keys))
    assert len(requests) == sum(len(r.verbs) for r in (*NAMESPACED_RULES, *CLUSTER_RULES))


def test_subresources_are_split_for_access_review():
    requests = access_review_requests(NAMESPACE)
    assert {
        "verb": "get",
        "group": "",
        "resource": "pods",
        "subresource": "log",
        "namespace": NAMESPACE,
    } in requests
    assert {
        "verb": "create",
        "group": "",
        "resource": "pods",
        "subresource": "exec",
        "namespace": NAMESPACE,
    } in (requests)


def test_cluster_pods_list_is_reviewed_across_all_namespaces():
    assert {"verb": "list", "group": "", "resource": "pods"} in access_review_requests(NAMESPACE)


def test_the_checks_the_issue_needs_are_covered():
    namespaced = _expected(namespaced_rules())
    for needed in [
        ("", "pods", "create"),
        ("", "pods/log", "get"),
        ("", "pods/status", "get"),
        ("", "pods/exec", "create"),
        ("", "pods/exec", "get"),
        ("", "events", "watch"),
        ("events.k8s.io", "events", "list"),
        ("coordination.k8s.io", "leases", "update"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("", "secrets", "create"),
        ("", "persistentvolumeclaims", "create"),
    ]:
        assert needed in namespaced
    cluster = _expected(cluster_rules())
    for needed in [
        ("", "nodes", "list"),
        ("storage.k8s.io", "storageclasses", "get"),
        ("node.k8s.io", "runtimeclasses", "get"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "list"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "list"),
        ("", "namespaces", "get"),
    ]:
        assert needed in cluster


def test_every_rule_has_a_reason():
    for rule in (*NAMESPACED_RULES, *CLUSTER_RULES, NAMESPACE_CREATE_RULE):
        assert rule.reason.endswith(".")
        assert len(rule.reason) > 20


def test_reviews_carry_their_rule_for_the_reason():
    review = next(r for r in access_reviews(NAMESPACE) if r.attributes.get("subresource") == "log")
    assert review.rule.reason == "Follow a building environment's log."
    assert review.body()["spec"]["resourceAttributes"] == review.attributes


def test_bindings_point_at_the_roles_and_service_account():
    binding = role_binding_manifest(NAMESPACE, "coderadmin", "web", "coderadmin-system")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "coderadmin",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "web", "namespace": "coderadmin-system"}
    ]
    cluster_binding = cluster_role_binding_manifest("coderadmin", "web", "coderadmin-system")
    assert "namespace" not in cluster_binding["metadata"]
    assert cluster_binding["roleRef"]["kind"] == "ClusterRole"
    assert cluster_binding["subjects"] == binding["subjects"]


def test_manifests_carry_our_labels():
    for manifest in _all_manifests():
        assert manifest["metadata"]["labels"][LABEL_MANAGED_BY] == APP_NAME
