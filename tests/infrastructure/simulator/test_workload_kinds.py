"""Deployments (apps/v1) and Ingresses (networking.k8s.io/v1): served so the product's own deploy/
manifests can be applied to the simulated cluster. Stored objects only: no controller acts on them."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

LABELS = {"app.kubernetes.io/name": "demo"}


def deployment(name: str, replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }


def ingress(name: str) -> dict:
    backend = {"service": {"name": "web", "port": {"name": "http"}}}
    path = {"path": "/", "pathType": "Prefix", "backend": backend}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {"rules": [{"host": "demo.example.com", "http": {"paths": [path]}}]},
    }


def test_deployment_create_get_replace_list_delete(simulated_cluster):
    apps = client.AppsV1Api(simulated_cluster.api_client)
    created = apps.create_namespaced_deployment("default", deployment("web"))
    assert created.metadata.uid and created.metadata.generation == 1
    current = apps.read_namespaced_deployment("web", "default")
    current.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment("web", "default", current)
    assert replaced.spec.replicas == 3
    assert replaced.metadata.generation == 2  # a spec change bumps the generation
    listed = apps.list_namespaced_deployment("default", label_selector="app.kubernetes.io/name=demo")
    assert [item.metadata.name for item in listed.items] == ["web"]
    apps.delete_namespaced_deployment("web", "default")
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("web", "default")
    assert missing.value.status == 404


def test_deployment_name_conflicts_and_status_is_its_own_subresource(simulated_cluster):
    apps = client.AppsV1Api(simulated_cluster.api_client)
    apps.create_namespaced_deployment("default", deployment("web"))
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment("default", deployment("web"))
    assert exists.value.status == 409
    status = {"status": {"replicas": 1, "readyReplicas": 1}}
    patched = apps.patch_namespaced_deployment_status("web", "default", status)
    assert patched.status.ready_replicas == 1
    assert patched.metadata.generation == 1  # status writes do not bump the generation


def test_ingress_create_get_delete_and_discovery(simulated_cluster):
    networking = client.NetworkingV1Api(simulated_cluster.api_client)
    created = networking.create_namespaced_ingress("default", ingress("web"))
    assert created.spec.rules[0].host == "demo.example.com"
    assert networking.read_namespaced_ingress("web", "default").metadata.uid == created.metadata.uid
    networking.delete_namespaced_ingress("web", "default")
    assert networking.list_namespaced_ingress("default").items == []
    served = {
        (group, resource.name)
        for group, api in (
            ("apps", client.AppsV1Api(simulated_cluster.api_client)),
            ("networking.k8s.io", networking),
        )
        for resource in api.get_api_resources().resources
    }
    assert {
        ("apps", "deployments"),
        ("apps", "deployments/status"),
        ("networking.k8s.io", "ingresses"),
    } <= served
