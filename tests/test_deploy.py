"""The Kubernetes manifests under deploy/: valid, consistent with each other and with the product, and
the RBAC exactly what infrastructure/permissions.py defines (proven on the simulated cluster too)."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from kubernetes import client, utils
from kubernetes.dynamic import DynamicClient

from coderadmin.middleware import HealthCheckMiddleware
from infrastructure import gateway as gw
from infrastructure import labels, permissions
from infrastructure.reconciler import reconcile
from infrastructure.simulator import resources as simulator_resources

DEPLOY = Path(settings.BASE_DIR) / "deploy"
BASE = DEPLOY / "base"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
DEPLOYMENTS = ("web", "worker", "beat", "watcher")


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_rbac", DEPLOY / "generate_rbac.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate_rbac = load_generator()


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def objects() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in documents(BASE / name)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects() if obj["kind"] == kind]


def deployment(component: str) -> dict[str, Any]:
    return next(obj for obj in by_kind("Deployment") if obj["metadata"]["name"] == f"coderadmin-{component}")


def pod_spec(component: str) -> dict[str, Any]:
    return deployment(component)["spec"]["template"]["spec"]


def containers(component: str) -> list[dict[str, Any]]:
    spec = pod_spec(component)
    return spec.get("initContainers", []) + spec["containers"]


@pytest.fixture(scope="module")
def validate():
    """kubernetes-validate strict for every supported version, with its schema files read once."""
    cached = functools.cache(kubernetes_validate.utils.schema_contents)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)

        def check(obj: dict[str, Any]) -> None:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)

        yield check


# ------------------------------------------------------------------ validity


def test_the_kustomization_lists_every_manifest_of_the_base():
    files = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}

    assert sorted(kustomization()["resources"]) == sorted(files)
    assert "namespace" not in kustomization()  # it would move the Role out of the environments namespace


@pytest.mark.parametrize(
    "path", sorted([*BASE.glob("*.yaml"), DEPLOY / "secret.example.yaml"]), ids=lambda p: p.name
)
def test_every_manifest_validates_strictly_on_every_supported_version(validate, path):
    if path.name == "kustomization.yaml":
        assert kustomization()["kind"] == "Kustomization"
        return
    for obj in documents(path):
        validate(obj)


def test_strict_validation_catches_a_misspelt_field(validate):
    broken = yaml.safe_load((BASE / "service.yaml").read_text())
    broken["spec"]["port"] = broken["spec"].pop("ports")

    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


# ------------------------------------------------------------------ RBAC


def test_the_committed_rbac_is_what_the_generator_writes():
    assert (BASE / "rbac.yaml").read_text() == generate_rbac.render()


def test_the_rbac_objects_equal_the_permissions_module_output():
    expected = permissions.rbac_manifests("coderadmin-environments", "coderadmin", "coderadmin")

    assert documents(BASE / "rbac.yaml") == expected


def test_the_generator_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "rbac.yaml"
    stale.write_text("# edited by hand\n")
    monkeypatch.setattr(generate_rbac, "OUTPUT", stale)
    monkeypatch.setattr(generate_rbac, "ROOT", tmp_path)

    assert generate_rbac.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert generate_rbac.main([]) == 0
    assert generate_rbac.main(["--check"]) == 0
    assert stale.read_text() == generate_rbac.render()


def test_the_bindings_name_the_service_account_the_pods_run_as():
    account = by_kind("ServiceAccount")[0]["metadata"]
    subjects = [
        subject
        for kind in ("RoleBinding", "ClusterRoleBinding")
        for b in by_kind(kind)
        for subject in b["subjects"]
    ]

    assert (
        subjects
        == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}] * 2
    )
    assert {pod_spec(component)["serviceAccountName"] for component in DEPLOYMENTS} == {account["name"]}
    assert {ns["metadata"]["name"] for ns in by_kind("Namespace")} == {
        account["namespace"],
        "coderadmin-environments",
    }


def apply(handle, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        utils.create_from_dict(handle.api_client, obj)


def test_the_rbac_grants_what_the_product_needs_and_nothing_in_other_namespaces(simulated_cluster):
    apply(simulated_cluster, by_kind("Namespace") + by_kind("ServiceAccount") + documents(BASE / "rbac.yaml"))
    token = simulated_cluster.token_for_service_account("coderadmin", "coderadmin")
    api = client.AuthorizationV1Api(simulated_cluster.api_client_for_token(token))

    def allowed(attributes: dict[str, str]) -> bool:
        body = {"spec": {"resourceAttributes": attributes}}
        return api.create_self_subject_access_review(body).status.allowed

    needed = permissions.access_review_requests("coderadmin-environments")
    assert [attributes for attributes in needed if not allowed(attributes)] == []
    assert not allowed({"verb": "list", "resource": "secrets", "namespace": "coderadmin"})
    assert not allowed({"verb": "create", "resource": "pods", "namespace": "default"})
    assert not allowed({"verb": "create", "resource": "namespaces"})


def kustomized() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/base`` sends: the kustomize build of the base."""
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    built = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, check=True, timeout=60
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc is not None]


def test_the_kustomize_build_is_every_listed_object_with_the_pinned_image():
    built = kustomized()
    key = [(obj["kind"], obj["metadata"]["name"]) for obj in objects()]
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in built) == sorted(key)
    tag = kustomization()["images"][0]["newTag"]
    images = {
        c["image"]
        for obj in built
        if obj["kind"] == "Deployment"
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"ghcr.io/coderadmin/coderadmin:{tag}"}


def _cluster_kinds_and_verbs() -> list[dict[str, str]]:
    """Every verb on every kind the simulated cluster serves: in both namespaces and cluster-wide."""
    reviews = []
    for rt in simulator_resources.RESOURCES:
        for verb in rt.verbs:
            base = {"verb": verb, "group": rt.group, "resource": rt.plural}
            if rt.namespaced:
                reviews += [{**base, "namespace": ns} for ns in ("coderadmin-environments", "coderadmin")]
            else:
                reviews.append(base)
    return reviews


def test_kubectl_apply_of_the_whole_base_is_accepted_and_the_account_gets_exactly_its_rules(
    simulated_cluster,
):
    """Every object of the kustomize build created through the official client as a cluster admin,
    then the product's own service account (created by the manifests) asks what it may do."""
    built = kustomized()
    for obj in built:
        created = utils.create_from_dict(simulated_cluster.api_client, obj)
        assert [item.metadata.name for item in created] == [obj["metadata"]["name"]]
    dynamic = DynamicClient(simulated_cluster.api_client)
    for obj in built:
        api = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        stored = api.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))
        assert stored.metadata.uid
    token = simulated_cluster.token_for_service_account("coderadmin", "coderadmin")
    reviews = client.AuthorizationV1Api(simulated_cluster.api_client_for_token(token))

    def allowed(attributes: dict[str, str]) -> bool:
        body = {"spec": {"resourceAttributes": attributes}}
        return reviews.create_self_subject_access_review(body).status.allowed

    needed = permissions.access_review_requests("coderadmin-environments")
    assert [attributes for attributes in needed if not allowed(attributes)] == []
    cluster_wide = [attributes for attributes in needed if "namespace" not in attributes]

    def expected(attributes: dict[str, str]) -> bool:
        without = {k: v for k, v in attributes.items() if k != "namespace"}
        return attributes in needed or without in cluster_wide

    granted = {tuple(sorted(a.items())) for a in _cluster_kinds_and_verbs() if allowed(a)}
    wanted = {tuple(sorted(a.items())) for a in _cluster_kinds_and_verbs() if expected(a)}
    assert granted == wanted
    assert not allowed({"verb": "get", "resource": "pods", "subresource": "exec", "namespace": "coderadmin"})
    assert not allowed({"verb": "escalate", "group": "rbac.authorization.k8s.io", "resource": "roles"})


def test_the_reconciler_works_with_only_the_shipped_permissions(simulated_cluster, db, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "deploy"}
    }
    apply(simulated_cluster, by_kind("Namespace") + by_kind("ServiceAccount") + documents(BASE / "rbac.yaml"))
    meta = {"name": "leftover", "labels": labels.environment_labels(31337)}
    client.CoreV1Api(simulated_cluster.api_client).create_namespaced_secret(
        "coderadmin-environments", {"metadata": meta, "stringData": {"k": "v"}}
    )
    token = simulated_cluster.token_for_service_account("coderadmin", "coderadmin")

    report = reconcile(gw.Gateway(simulated_cluster.api_client_for_token(token)))

    assert report.errors == []
    assert report.orphans_deleted == ["Secret leftover"]


# ------------------------------------------------------------------ the workloads


def test_every_pod_runs_as_non_root_with_a_locked_down_container():
    for component in DEPLOYMENTS:
        pod = pod_spec(component)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, component
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, component
        for container in containers(component):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
            assert "privileged" not in security, container["name"]


def test_every_container_requests_resources_and_caps_its_memory():
    for component in DEPLOYMENTS:
        for container in containers(component):
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_every_long_running_container_has_a_liveness_probe_and_the_web_a_readiness_probe():
    for component in DEPLOYMENTS:
        assert "livenessProbe" in pod_spec(component)["containers"][0], component
    web = pod_spec("web")["containers"][0]
    served = set(HealthCheckMiddleware.paths)
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {web["livenessProbe"]["httpGet"]["path"], web["startupProbe"]["httpGet"]["path"]} <= served
    assert "/readyz" in served


def test_the_writable_paths_are_volumes_because_the_root_filesystem_is_read_only():
    for component in DEPLOYMENTS:
        for container in containers(component):
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert {"/app/var", "/tmp"} <= mounts, container["name"]


def test_the_commands_exist_in_the_product():
    assert pod_spec("watcher")["containers"][0]["command"] == ["python", "manage.py", "watch_cluster"]
    assert "watch_cluster" in get_commands()
    assert pod_spec("web")["initContainers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert pod_spec("beat")["containers"][0]["command"][:3] == ["python", "manage.py", "run_beat"]
    assert "run_beat" in get_commands()
    assert "celery -A coderadmin worker" in pod_spec("worker")["containers"][0]["command"][-1]


def test_beat_replicas_are_lease_elected_so_extra_ones_and_rollouts_are_safe():
    beat = deployment("beat")["spec"]
    assert beat["replicas"] == 2
    assert beat["strategy"]["type"] == "RollingUpdate"
    assert pod_spec("beat")["containers"][0]["command"][:3] == ["python", "manage.py", "run_beat"]


def test_worker_and_watcher_pods_serve_their_metrics_from_a_shared_multiprocess_directory():
    multiproc = str(settings.PROMETHEUS_MULTIPROC_DIR).replace(str(settings.VAR_DIR), "/app/var")
    assert multiproc == "/app/var/metrics"
    for component in ("worker", "watcher"):
        spec = pod_spec(component)
        main, sidecar = spec["containers"]
        assert sidecar["command"] == ["python", "manage.py", "serve_metrics", "--port", "9100"]
        assert sidecar["ports"] == [{"name": "metrics", "containerPort": 9100}]
        for container in (main, sidecar):
            assert {"name": "metrics", "mountPath": multiproc} in container["volumeMounts"]
        assert {"name": "metrics", "emptyDir": {}} in spec["volumes"]
        annotations = deployment(component)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == "9100"
    assert "serve_metrics" in get_commands()


def test_the_service_and_ingress_reach_the_web_pods():
    service = by_kind("Service")[0]
    web = deployment("web")
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    assert web["spec"]["selector"]["matchLabels"] == web["spec"]["template"]["metadata"]["labels"]
    port_names = {port["name"] for port in pod_spec("web")["containers"][0]["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    backend = by_kind("Ingress")[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_configuration_comes_from_the_config_map_and_the_secret_the_example_describes():
    config_map = by_kind("ConfigMap")[0]
    secret = documents(DEPLOY / "secret.example.yaml")[0]
    for component in DEPLOYMENTS:
        for container in containers(component):
            assert container["envFrom"] == [
                {"configMapRef": {"name": config_map["metadata"]["name"]}},
                {"secretRef": {"name": secret["metadata"]["name"]}},
            ]
    assert config_map["metadata"]["namespace"] == secret["metadata"]["namespace"] == "coderadmin"
    assert config_map["data"]["CODERADMIN_CLUSTER"] == "incluster"
    assert set(secret["stringData"]) == {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CREDENTIALS_ENCRYPTION_KEY",
    }
    assert all("replace" in value for value in secret["stringData"].values())
    assert "secret.example.yaml" not in kustomization()["resources"]


def test_every_container_uses_the_product_image_the_kustomization_pins():
    pinned = {image["name"] for image in kustomization()["images"]}
    assert {container["image"] for component in DEPLOYMENTS for container in containers(component)} == pinned
