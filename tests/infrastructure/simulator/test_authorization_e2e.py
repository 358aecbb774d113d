"""Service-account tokens against the real RBAC rules, end to end over HTTP."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException


def test_service_account_is_limited_to_its_role(simulated_cluster):
    admin = client.RbacAuthorizationV1Api(simulated_cluster.api_client)
    token = simulated_cluster.token_for_service_account("default", "robot")
    robot = client.CoreV1Api(simulated_cluster.api_client_for_token(token))
    with pytest.raises(ApiException) as exc:
        robot.list_namespaced_config_map("default")
    assert exc.value.status == 403
    assert (
        'User "system:serviceaccount:default:robot" cannot list resource "configmaps"'
        in json.loads(exc.value.body)["message"]
    )

    admin.create_namespaced_role(
        "default",
        {
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    admin.create_namespaced_role_binding(
        "default",
        {
            "metadata": {"name": "robot-reads"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
        },
    )
    assert robot.list_namespaced_config_map("default").items == []
    with pytest.raises(ApiException) as exc:
        robot.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert exc.value.status == 403

    reviews = client.AuthorizationV1Api(simulated_cluster.api_client_for_token(token))

    def can(verb: str) -> bool:
        review = {
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": "configmaps"}}
        }
        return reviews.create_self_subject_access_review(review).status.allowed

    assert can("list") is True
    assert can("delete") is False


def test_impersonation_evaluates_the_impersonated_user(simulated_cluster, raw):
    path = "/api/v1/namespaces/default/configmaps"
    headers_user = "system:serviceaccount:default:nobody"
    response = raw("GET", path, headers={"Impersonate-User": headers_user})
    assert response.status == 403
    assert f'User "{headers_user}" cannot list resource "configmaps"' in response.json()["message"]
    as_admin_group = raw(
        "GET", path, headers={"Impersonate-User": "someone", "Impersonate-Group": "system:masters"}
    )
    assert as_admin_group.status == 200
    assert raw("GET", path, headers={"Impersonate-Group": "system:masters"}).status == 400


def test_only_allowed_users_may_impersonate(simulated_cluster, raw):
    token = simulated_cluster.token_for_service_account("default", "robot")
    response = raw("GET", "/api/v1/namespaces", token=token, headers={"Impersonate-User": "admin"})
    assert response.status == 403
    assert "cannot impersonate resource" in response.json()["message"]


def test_string_data_is_folded_into_data(simulated_cluster):
    core = client.CoreV1Api(simulated_cluster.api_client)
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "bee"}}
    )
    secret = core.read_namespaced_secret("s", "default")
    assert secret.data == {"a": "YQ==", "b": "YmVl"}
    assert secret.string_data is None
