"""The real kubectl against the simulated cluster, with the kubeconfig the simulator writes."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from .conftest import pod

KUBECTL = "/usr/bin/kubectl"

POD_YAML = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: nginx:1.25
"""


@pytest.fixture
def kubectl(simulated_cluster, tmp_path):
    env = {**os.environ, "KUBECONFIG": str(simulated_cluster.kubeconfig_path), "KUBECACHEDIR": str(tmp_path)}

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_get_with_short_names_and_selectors(kubectl, simulated_cluster):
    simulated_cluster.store.create("pods", pod("web", {"app": "web"}), "default")
    simulated_cluster.store.create("pods", pod("db", {"app": "db"}), "default")
    assert kubectl("get", "po", "-l", "app=web", "-o", "name").stdout.split() == ["pod/web"]
    listing = json.loads(kubectl("get", "pods", "-o", "json").stdout)
    assert [p["metadata"]["name"] for p in listing["items"]] == ["db", "web"]
    assert "default" in kubectl("get", "ns").stdout
    missing = kubectl("get", "pod", "nothing", check=False)
    assert missing.returncode == 1
    assert 'pods "nothing" not found' in missing.stderr


def test_apply_server_side_then_describe_and_logs(kubectl, simulated_cluster):
    assert "pod/web serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=POD_YAML).stdout
    kubectl("apply", "--server-side", "-f", "-", stdin=POD_YAML.replace("app: web", "app: web2"))
    assert simulated_cluster.store.get("pods", "default", "web")["metadata"]["labels"] == {"app": "web2"}
    simulated_cluster.store.create(
        "events",
        {
            "metadata": {"name": "web.1"},
            "involvedObject": {
                "kind": "Pod",
                "name": "web",
                "namespace": "default",
                "uid": simulated_cluster.store.get("pods", "default", "web")["metadata"]["uid"],
            },
            "reason": "Scheduled",
            "message": "Successfully assigned default/web to node-1",
            "type": "Normal",
        },
        "default",
    )
    described = kubectl("describe", "pod", "web").stdout
    assert "Image:" in described and "nginx:1.25" in described
    assert "Successfully assigned default/web to node-1" in described
    simulated_cluster.store.append_log("default", "web", "main", "ready\nserving")
    assert kubectl("logs", "web", "--tail=1").stdout == "serving\n"


def test_client_side_apply_and_strict_validation(kubectl, simulated_cluster):
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n"
    assert "configmap/cfg created" in kubectl("apply", "-f", "-", stdin=manifest).stdout
    assert (
        "configmap/cfg configured"
        in kubectl("apply", "-f", "-", stdin=manifest.replace("a: b", "a: c")).stdout
    )
    assert simulated_cluster.store.get("configmaps", "default", "cfg")["data"] == {"a": "c"}


def test_delete_waits_for_the_object_to_go(kubectl, simulated_cluster):
    simulated_cluster.store.create(
        "configmaps", {"metadata": {"name": "c", "finalizers": ["x/y"]}}, "default"
    )

    def release() -> None:
        time.sleep(0.8)
        simulated_cluster.store.update("configmaps", {"metadata": {"name": "c", "namespace": "default"}})

    thread = threading.Thread(target=release)
    thread.start()
    started = time.monotonic()
    assert 'configmap "c" deleted' in kubectl("delete", "configmap", "c", "--timeout=20s").stdout
    thread.join()
    assert time.monotonic() - started >= 0.8


def test_wait_for_condition(kubectl, simulated_cluster):
    store = simulated_cluster.store
    store.create("pods", pod("web"), "default")

    def become_ready() -> None:
        time.sleep(0.5)
        store.update_status(
            "pods",
            {
                "metadata": {"name": "web", "namespace": "default"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            },
        )

    thread = threading.Thread(target=become_ready)
    thread.start()
    result = kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=20s")
    thread.join()
    assert "pod/web condition met" in result.stdout


def test_wait_for_delete(kubectl, simulated_cluster):
    simulated_cluster.store.create("configmaps", {"metadata": {"name": "c"}}, "default")
    timer = threading.Timer(0.5, lambda: simulated_cluster.store.delete("configmaps", "default", "c"))
    timer.start()
    kubectl("wait", "--for=delete", "configmap/c", "--timeout=20s")
    timer.join()


def test_auth_can_i_as_a_service_account(kubectl):
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    denied = kubectl(
        "auth", "can-i", "create", "pods", "--as=system:serviceaccount:default:robot", check=False
    )
    assert denied.returncode == 1
    assert denied.stdout.strip() == "no"


def test_secret_string_data_through_apply(kubectl, simulated_cluster):
    manifest = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: abc}\n"
    kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert kubectl("get", "secret", "s", "-o", "jsonpath={.data.token}").stdout == "YWJj"


RBAC_MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: coder}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: coder}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: app}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: app}
subjects: [{kind: ServiceAccount, name: app, namespace: coder}]
"""


def test_apply_an_rbac_manifest_check_it_and_delete_it(kubectl):
    applied = kubectl("apply", "--server-side", "-f", "-", stdin=RBAC_MANIFEST).stdout
    assert "clusterrolebinding.rbac.authorization.k8s.io/app serverside-applied" in applied
    as_app = "--as=system:serviceaccount:coder:app"
    assert kubectl("auth", "can-i", "create", "pods", "-n", "coder", as_app).stdout.strip() == "yes"
    assert (
        kubectl("auth", "can-i", "delete", "pods", "-n", "coder", as_app, check=False).stdout.strip() == "no"
    )
    deleted = kubectl("delete", "-f", "-", stdin=RBAC_MANIFEST).stdout
    assert 'serviceaccount "app" deleted' in deleted
    assert 'namespace "coder" deleted' in deleted
