"""Discovery, authentication and the authorisation hooks, through the official client and raw HTTP."""

from __future__ import annotations

import http.client
import json
import ssl
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infrastructure.simulator import rbac
from infrastructure.simulator.errors import forbidden
from infrastructure.simulator.version import is_simulated


def test_version_identifies_a_simulated_v1_31_server(simulated_cluster):
    info = client.VersionApi(simulated_cluster.api_client).get_code()
    assert info.git_version.startswith("v1.31.")
    assert info.platform.startswith("simulated/")
    assert is_simulated(info.to_dict())
    assert not is_simulated({"platform": "linux/amd64"})


def test_core_discovery_lists_kinds_verbs_short_names_and_subresources(raw):
    assert raw("GET", "/api").json()["versions"] == ["v1"]
    resources = {r["name"]: r for r in raw("GET", "/api/v1").json()["resources"]}
    assert resources["pods"]["kind"] == "Pod"
    assert resources["pods"]["shortNames"] == ["po"]
    assert resources["pods"]["namespaced"] is True
    assert "watch" in resources["pods"]["verbs"]
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert resources["pods/log"]["verbs"] == ["get"]
    assert resources["namespaces"]["namespaced"] is False
    assert "deletecollection" not in resources["namespaces"]["verbs"]
    for name in (
        "nodes",
        "persistentvolumeclaims",
        "secrets",
        "events",
        "services",
        "serviceaccounts",
        "resourcequotas",
    ):
        assert name in resources


def test_group_discovery(raw):
    groups = {g["name"]: g for g in raw("GET", "/apis").json()["groups"]}
    assert set(groups) >= {
        "storage.k8s.io",
        "node.k8s.io",
        "events.k8s.io",
        "admissionregistration.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "authorization.k8s.io",
    }
    assert groups["storage.k8s.io"]["preferredVersion"]["groupVersion"] == "storage.k8s.io/v1"
    assert raw("GET", "/apis/storage.k8s.io").json()["name"] == "storage.k8s.io"
    listing = raw("GET", "/apis/rbac.authorization.k8s.io/v1").json()
    kinds = {r["name"]: r["kind"] for r in listing["resources"]}
    assert kinds == {
        "roles": "Role",
        "rolebindings": "RoleBinding",
        "clusterroles": "ClusterRole",
        "clusterrolebindings": "ClusterRoleBinding",
    }
    assert raw("GET", "/apis/nothing.example.com/v1").status == 404
    assert raw("GET", "/apis/storage.k8s.io/v9").status == 404


def test_openapi_v3_advertises_field_validation_for_kubectl(raw):
    root = raw("GET", "/openapi/v3").json()
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    doc = raw("GET", url).json()
    patch_op = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch_op["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert "fieldValidation" in {p["name"] for p in patch_op["parameters"]}
    assert raw("GET", "/openapi/v3/apis/unknown/v1").status == 404


@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_401(raw, token):
    response = raw("GET", "/api/v1/namespaces", token=token, auth=token is not None)
    assert response.status == 401
    assert response.json()["reason"] == "Unauthorized"


def test_health_needs_no_token(raw):
    assert raw("GET", "/healthz", auth=False).body == b"ok"


def test_wrong_token_through_the_client(simulated_cluster):
    api = client.CoreV1Api(simulated_cluster.api_client_for_token("nope"))
    with pytest.raises(ApiException) as exc:
        api.list_namespace()
    assert exc.value.status == 401


def test_every_request_is_authorised_with_the_kubernetes_verb(simulated_cluster, monkeypatch, raw):
    calls = []

    def record(store, user, verb, group, resource, subresource, namespace, name):
        calls.append((user.username, verb, group, resource, subresource, namespace, name))

    monkeypatch.setattr(rbac, "authorize", record)
    token = simulated_cluster.token_for_service_account("default", "robot")
    api = client.CoreV1Api(simulated_cluster.api_client_for_token(token))
    api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    api.read_namespaced_config_map("c", "default")
    api.list_namespaced_config_map("default")
    api.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    api.delete_namespaced_config_map("c", "default")
    api.delete_collection_namespaced_config_map("default")
    raw("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1")
    user = "system:serviceaccount:default:robot"
    assert calls[:6] == [
        (user, "create", "", "configmaps", "", "default", None),
        (user, "get", "", "configmaps", "", "default", "c"),
        (user, "list", "", "configmaps", "", "default", None),
        (user, "patch", "", "configmaps", "", "default", "c"),
        (user, "delete", "", "configmaps", "", "default", "c"),
        (user, "deletecollection", "", "configmaps", "", "default", None),
    ]
    assert calls[6] == ("system:admin", "watch", "", "pods", "", "default", None)


def test_a_forbidden_answer_from_rbac_is_returned(simulated_cluster, monkeypatch):
    def deny(store, user, verb, group, resource, subresource, namespace, name):
        raise forbidden(
            f'pods is forbidden: User "{user.username}" cannot {verb} resource "pods"', "", "pods"
        )

    monkeypatch.setattr(rbac, "authorize", deny)
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(simulated_cluster.api_client).list_namespaced_pod("default")
    assert exc.value.status == 403
    assert 'User "system:admin" cannot list' in json.loads(exc.value.body)["message"]


def test_service_account_tokens_carry_the_service_account_identity(simulated_cluster, monkeypatch):
    seen = []

    def allowed(store, user, verb, group, resource, subresource, namespace, name):
        seen.append((user, verb, resource, namespace))
        return verb == "get", "RBAC: allowed by RoleBinding" if verb == "get" else ""

    monkeypatch.setattr(rbac, "allowed", allowed, raising=False)
    token = simulated_cluster.token_for_service_account("team", "builder")
    api = client.AuthorizationV1Api(simulated_cluster.api_client_for_token(token))
    review = {"spec": {"resourceAttributes": {"namespace": "team", "verb": "get", "resource": "pods"}}}
    result = api.create_self_subject_access_review(review)
    assert result.status.allowed is True
    assert result.status.reason == "RBAC: allowed by RoleBinding"
    review["spec"]["resourceAttributes"]["verb"] = "delete"
    assert api.create_self_subject_access_review(review).status.allowed is False
    user = seen[0][0]
    assert user.username == "system:serviceaccount:team:builder"
    assert set(user.groups) == {
        "system:serviceaccounts",
        "system:serviceaccounts:team",
        "system:authenticated",
    }


def test_admin_token_is_system_admin_in_system_masters(simulated_cluster):
    user = simulated_cluster.cluster.user_for_token(simulated_cluster.cluster.admin_token)
    assert user.username == "system:admin"
    assert "system:masters" in user.groups


def test_self_subject_access_review_allows_when_rbac_has_no_allowed(simulated_cluster, monkeypatch):
    monkeypatch.delattr(rbac, "allowed", raising=False)
    api = client.AuthorizationV1Api(simulated_cluster.api_client)
    review = {"spec": {"resourceAttributes": {"namespace": "x", "verb": "create", "resource": "pods"}}}
    assert api.create_self_subject_access_review(review).status.allowed is True


def test_unknown_paths_and_verbs(raw):
    assert raw("GET", "/api/v2").status == 404
    assert raw("GET", "/api/v1/widgets").status == 404
    assert raw("GET", "/api/v1/namespaces/default/pods/p/exec").status == 404
    assert raw("GET", "/somewhere").status == 404
    response = raw("POST", "/api/v1/namespaces/default/pods/p", {})
    assert response.status == 405
    assert response.json()["reason"] == "MethodNotAllowed"
    assert raw("DELETE", "/api/v1/namespaces").status == 405
    assert raw("POST", "/api/v1", {}).status == 405


def test_invalid_content_length_is_400(simulated_cluster):
    url = urlsplit(simulated_cluster.url)
    context = ssl.create_default_context(cafile=str(simulated_cluster.cluster.ca_file))
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=5)
    conn.putrequest("POST", "/api/v1/namespaces/default/configmaps")
    conn.putheader("Authorization", f"Bearer {simulated_cluster.cluster.admin_token}")
    conn.putheader("Content-Length", "abc")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400
    assert "invalid Content-Length" in json.loads(response.read())["message"]
    conn.close()
