"""The Kubernetes manifests under deploy/: valid, consistent with each other and with the product, and
the RBAC exactly what infrastructure/permissions.py defines (proven on the simulated cluster too)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from kubernetes import client, utils

from coderadmin.middleware import HealthCheckMiddleware
from infrastructure import gateway as gw
from infrastructure import labels, permissions
from infrastructure.reconciler import reconcile

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
    assert pod_spec("beat")["containers"][0]["command"][:4] == ["celery", "-A", "coderadmin", "beat"]
    assert "celery -A coderadmin worker" in pod_spec("worker")["containers"][0]["command"][-1]


def test_beat_is_a_single_replica_never_doubled_during_a_rollout():
    beat = deployment("beat")["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}


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
