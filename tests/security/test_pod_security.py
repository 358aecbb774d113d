"""Pod-level security, proven on the simulated cluster's admission rather than by reading dicts alone.

Every shape of environment the product builds (backend x image kind) is created, with its claim,
registry secret and network policy, in a namespace whose Pod Security level is the one the shape is
meant for; the admission must accept it there and refuse the privileged shapes one level up. The
shipped RBAC is applied, and provisioning runs under a token bound by it.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import Client
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from coderadmin.models import AuditEntry, User
from environments import manifests, provisioner, tasks
from environments.models import Environment, EnvironmentEvent, Image
from infrastructure import gateway as gw
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.simulator.admission import ENFORCE_LABEL
from tests.environments import cluster_support as cs
from tests.environments.factories import make_user
from tests.factories import site_admin

RBAC = Path(settings.BASE_DIR) / "deploy" / "base" / "rbac.yaml"
ENV_NAMESPACE = "coderadmin-environments"
PASSWORD = "registry-password-that-must-not-leak"
USERNAME = "robot-account"
BACKENDS = ("standard", "supervisor", "runtimeclass-containerd", "runtimeclass-crio")
READ_VERBS = {"get", "list", "watch"}


def make_image(private: bool, uid: int | None, command: list[str] | None) -> Image:
    image = Image(
        repository="registry.example.com/team/dev", username="coder", run_as_uid=uid, command=command
    )
    if private:
        image.registry_username = USERNAME
        image.registry_password = PASSWORD
    return image


def make_env(image: Image, infra: InfrastructureSettings, backend: str, gpu: int, pk: int) -> Environment:
    env = Environment(
        pk=pk,
        owner=User(username=f"user{pk}", handle=f"user{pk}"),
        name=f"env{pk}",
        image=image,
        tag="1.0",
        cpu_millicores=500,
        memory_mib=512,
        disk_gib=5,
        gpu_count=gpu,
        cvm=backend != "standard",
        cvm_backend="" if backend == "standard" else backend.split("-")[0],
    )
    env.assign_kubernetes_names(infra)
    return env


def variants() -> Iterator[Any]:
    """Every backend x root/non-root x command or not x credentials or not (x GPUs for standard)."""
    pk = itertools.count(1)
    for backend, uid, command, private in itertools.product(
        BACKENDS, [None, 1000], [None, ["/usr/bin/code-server"]], [False, True]
    ):
        for gpu in (0, 1) if backend == "standard" else (0,):
            label = f"{backend},uid={uid},command={bool(command)},private={private},gpu={gpu}"
            yield pytest.param(backend, uid, command, private, gpu, next(pk), id=label)


def build(backend: str, uid, command, private: bool, gpu: int, pk: int, infra=None) -> list[dict[str, Any]]:
    infra = infra or InfrastructureSettings(max_gpu_count=4)
    image = make_image(private, uid, command)
    env = make_env(image, infra, backend, gpu, pk)
    runtime = manifests.NODE_RUNTIME_CRIO if backend.endswith("crio") else manifests.NODE_RUNTIME_CONTAINERD
    return manifests.environment_objects(env, image, infra, runtime)


def intended_level(backend: str, uid: int | None) -> str:
    """The Pod Security level each shape is designed for."""
    if backend == "supervisor":
        return "privileged"
    if backend == "standard" and uid:
        return "restricted"
    return "baseline"


def stricter(level: str) -> str | None:
    return {"privileged": "baseline", "baseline": "restricted"}.get(level)


def the_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [obj for obj in objects if obj["kind"] == "Pod"]
    return pod


def in_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    return [{**obj, "metadata": {**obj["metadata"], "namespace": namespace}} for obj in objects]


# ------------------------------------------------------------------------------ the pod specs


@pytest.mark.parametrize(("backend", "uid", "command", "private", "gpu", "pk"), list(variants()))
def test_pod_shape(backend, uid, command, private, gpu, pk):
    objects = build(backend, uid, command, private, gpu, pk)
    pod = the_pod(objects)
    spec = pod["spec"]
    containers = spec.get("initContainers", []) + spec["containers"]
    privileged = [c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")]
    assert privileged == (["supervisor"] if backend == "supervisor" else [])
    assert spec["automountServiceAccountToken"] is False
    assert not any(spec.get(field) for field in ("hostNetwork", "hostPID", "hostIPC"))
    host_paths = [v["name"] for v in spec.get("volumes", []) if "hostPath" in v]
    assert bool(host_paths) == (backend == "supervisor")

    text = json.dumps(pod)
    assert PASSWORD not in text and USERNAME not in text
    for container in containers:
        for variable in container.get("env", []):
            assert "secretKeyRef" not in json.dumps(variable.get("valueFrom", {}))
            assert not any(word in variable["name"].upper() for word in ("PASSWORD", "TOKEN", "AUTH"))
    secrets = [obj for obj in objects if obj["kind"] == "Secret"]
    assert len(secrets) == int(private)
    if private:
        name = secrets[0]["metadata"]["name"]
        mounted = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == name]
        pulled = [ref["name"] for ref in spec.get("imagePullSecrets", [])]
        # The supervisor pulls the user's image itself (a mounted Docker config); the other
        # shapes let the kubelet pull (imagePullSecrets). Never both, never an env variable.
        assert (len(mounted), pulled) == ((1, []) if backend == "supervisor" else (0, [name]))


def _allowed(policy: dict[str, Any], address: str) -> bool:
    """Whether the policy's egress rules let a pod reach ``address`` outside the cluster (a peer
    with only a namespace or pod selector matches pods, never an outside address)."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            if ip.version == network.version and ip in network:
                excluded = [ipaddress.ip_network(cidr) for cidr in block.get("except", [])]
                if not any(ip.version == e.version and ip in e for e in excluded):
                    return True
    return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_network_policy_blocks_the_metadata_address_and_all_ingress(backend):
    objects = build(backend, None, None, False, 0, 7)
    (policy,) = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["ingress"] == []
    pod_labels = the_pod(objects)["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert not _allowed(policy, "169.254.169.254")
    assert not _allowed(policy, "fd00:ec2::254")
    assert _allowed(policy, "140.82.112.3")  # the rest of the internet stays reachable
    assert _allowed(policy, "2606:4700::1111")


# ----------------------------------------------------------------- admission on the cluster


@pytest.fixture
def cluster(simulated_cluster):
    for level in ("privileged", "baseline", "restricted"):
        simulated_cluster.cluster.ensure_namespace(f"psa-{level}", {ENFORCE_LABEL: level})
    utils.create_from_dict(
        simulated_cluster.api_client,
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": "sysbox-runc"},
            "handler": "sysbox-runc",
        },
    )
    return simulated_cluster


def _create_all(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    gateway = gw.Gateway(api)
    for obj in objects:
        gateway.create(obj)


@pytest.mark.parametrize(("backend", "uid", "command", "private", "gpu", "pk"), list(variants()))
def test_admission_accepts_each_shape_at_its_level_and_refuses_it_one_level_up(
    cluster, backend, uid, command, private, gpu, pk
):
    level = intended_level(backend, uid)
    objects = build(backend, uid, command, private, gpu, pk)
    _create_all(cluster.api_client, in_namespace(objects, f"psa-{level}"))
    created = client.CoreV1Api(cluster.api_client).read_namespaced_pod(
        the_pod(objects)["metadata"]["name"], f"psa-{level}"
    )
    assert created.spec.automount_service_account_token is False

    harder = stricter(level)
    if harder is not None:
        with pytest.raises(gw.GatewayError) as refused:
            gw.Gateway(cluster.api_client).create(in_namespace([the_pod(objects)], f"psa-{harder}")[0])
        assert refused.value.status == 403
        assert "violates PodSecurity" in refused.value.message


# ----------------------------------------------------------------------------- the RBAC


def rbac_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]


def test_the_rbac_grants_namespaced_verbs_in_the_environments_namespace_and_only_reads_cluster_wide():
    documents = rbac_documents()
    assert {doc["kind"] for doc in documents} == {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    for doc in documents:
        if doc["kind"] in ("Role", "RoleBinding"):
            assert doc["metadata"]["namespace"] == ENV_NAMESPACE
        if doc["kind"] == "ClusterRole":
            verbs = {verb for rule in doc["rules"] for verb in rule["verbs"]}
            assert verbs <= READ_VERBS, verbs
            resources = {resource for rule in doc["rules"] for resource in rule["resources"]}
            assert "secrets" not in resources
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


@pytest.fixture
def service_account_api(cluster) -> client.ApiClient:
    """A client holding a token of the product's service account, bound only by the shipped RBAC."""
    cluster.cluster.ensure_namespace("coderadmin")
    cluster.cluster.ensure_namespace(ENV_NAMESPACE)
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_service_account("coderadmin", {"metadata": {"name": "coderadmin"}})
    for doc in rbac_documents():
        utils.create_from_dict(cluster.api_client, doc)
    return cluster.api_client_for_token(cluster.token_for_service_account("coderadmin", "coderadmin"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_provisioning_works_under_the_shipped_rbac(service_account_api, backend):
    objects = build(backend, 1000, None, True, 0, 50)
    assert {obj["metadata"]["namespace"] for obj in objects} == {ENV_NAMESPACE}
    _create_all(service_account_api, objects)
    gateway = gw.Gateway(service_account_api)
    pod = the_pod(objects)["metadata"]["name"]
    assert gateway.get("Pod", ENV_NAMESPACE, pod)["metadata"]["name"] == pod
    for obj in reversed(objects):
        gateway.delete_if_exists(obj["kind"], ENV_NAMESPACE, obj["metadata"]["name"])


def _forbidden(call, *args) -> bool:
    try:
        call(*args)
    except ApiException as exc:
        return exc.status == 403
    return False


def test_the_service_account_cannot_reach_beyond_its_namespace(service_account_api, cluster):
    core = client.CoreV1Api(service_account_api)
    pod = in_namespace([the_pod(build("standard", 1000, None, False, 0, 60))], "kube-system")[0]
    node = client.CoreV1Api(cluster.api_client).list_node().items
    refused = {
        "create a pod in kube-system": _forbidden(core.create_namespaced_pod, "kube-system", pod),
        "create a pod in default": _forbidden(
            core.create_namespaced_pod,
            "default",
            {**pod, "metadata": {**pod["metadata"], "namespace": "default"}},
        ),
        "list secrets in kube-system": _forbidden(core.list_namespaced_secret, "kube-system"),
        "list secrets cluster-wide": _forbidden(core.list_secret_for_all_namespaces),
        "create a namespace": _forbidden(core.create_namespace, {"metadata": {"name": "mine"}}),
        "delete the environments namespace": _forbidden(core.delete_namespace, ENV_NAMESPACE),
        "delete a node": _forbidden(core.delete_node, node[0].metadata.name if node else "node-1"),
        "bind a cluster role": _forbidden(
            client.RbacAuthorizationV1Api(service_account_api).create_cluster_role_binding,
            {
                "metadata": {"name": "escalate"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "coderadmin", "namespace": "coderadmin"}],
            },
        ),
        "read a pod's log in kube-system": _forbidden(core.read_namespaced_pod_log, "coredns", "kube-system"),
        "delete a pod in kube-system": _forbidden(core.delete_namespaced_pod, "coredns", "kube-system"),
    }
    assert {what for what, ok in refused.items() if not ok} == set()


# ------------------------------------------------------------- credentials through a real build


@pytest.mark.django_db
@pytest.mark.parametrize("backend", [CvmBackend.SUPERVISOR, CvmBackend.RUNTIMECLASS, "standard"])
def test_a_private_image_build_never_shows_the_password(backend, tmp_path, caplog, monkeypatch):
    """Build with registry credentials through the product's provisioner; the password must not
    appear in logs, the build log, events, the audit log, the pod or the stored row."""
    for name in ("build_environment", "stop_environment", "delete_environment"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda *args: None)
    caplog.set_level(logging.DEBUG)
    profile = "sysbox-nodes" if backend == CvmBackend.RUNTIMECLASS else "demo"
    with cs.running_profile(profile, tmp_path, scale=0.0005) as handle:
        cvm = backend != "standard"
        cs.configure(cvm=cvm, backend=backend if cvm else CvmBackend.SUPERVISOR)
        image = cs.image(
            "ghcr.io/coderadmin/example-plain",
            username="coder",
            registry_username=USERNAME,
            registry_password=PASSWORD,
        )
        env = cs.create(make_user("pia"), image, cvm=cvm)
        gateway = gw.Gateway(handle.api_client)
        provisioner.build(env.pk, env.generation, gateway)
        env.refresh_from_db()
        pod = gateway.get("Pod", env.namespace, env.pod_name)
        container = pod["spec"]["containers"][0]["name"]
        # Only the CVM backends log a build (the supervisor or the wrapper); a standard pod's kubelet
        # pull logs nothing into the container.
        log = (
            cs.eventually(
                lambda: gateway.pod_log(env.namespace, env.pod_name, container) or None, what="a log"
            )
            if cvm
            else ""
        )
        secret = gateway.get("Secret", env.namespace, env.registry_secret_name)

    seen = {
        "application logs": caplog.text,
        "pod": json.dumps(pod),
        "pod log": log,
        "events": json.dumps(list(EnvironmentEvent.objects.values_list("message", flat=True))),
        "audit": json.dumps(list(AuditEntry.objects.values()), default=str),
        "stored image row": json.dumps(list(Image.objects.values()), default=str),
    }
    assert [where for where, text in seen.items() if PASSWORD in text] == []
    assert secret["type"] == manifests.DOCKER_CONFIG_SECRET_TYPE
    assert PASSWORD in base64.b64decode(secret["data"][manifests.DOCKER_CONFIG_KEY]).decode()


@pytest.mark.django_db
def test_registry_passwords_entered_on_the_images_page_are_never_shown_again(caplog, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    caplog.set_level(logging.DEBUG)
    admin = site_admin(username="img-admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    fields = {
        "repository": "registry.example.com/team/private",
        "tags": "1.0",
        "default_tag": "1.0",
        "username": "coder",
        "min_cpu_millicores": "250",
        "min_memory_mib": "512",
        "min_disk_gib": "1",
        "registry_username": USERNAME,
        "registry_password": PASSWORD,
        "enabled": "on",
    }
    assert client.post("/images/new/", fields).status_code == 302
    image = Image.objects.get(repository=fields["repository"])
    assert image.has_registry_credentials and image.registry_password == PASSWORD
    edited = {**fields, "description": "edited", "registry_password": ""}
    assert client.post(f"/images/{image.pk}/", edited).status_code == 302
    image.refresh_from_db()
    assert image.registry_password == PASSWORD  # a blank field keeps the stored password

    pages = {
        path: client.get(path).content.decode()
        for path in (
            "/images/",
            f"/images/{image.pk}/",
            "/manage/audit/",
            "/admin/environments/image/",
            f"/admin/environments/image/{image.pk}/change/",
            "/admin/coderadmin/auditentry/",
        )
    }
    seen = {
        **pages,
        "application logs": caplog.text,
        "audit": json.dumps(list(AuditEntry.objects.values()), default=str),
        "stored row": json.dumps(list(Image.objects.values()), default=str),
    }
    assert [where for where, text in seen.items() if PASSWORD in text] == []
