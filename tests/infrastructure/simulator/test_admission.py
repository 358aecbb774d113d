"""Pod Security Admission and ResourceQuota admission, with the real 403 messages."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from infrastructure.simulator.admission import (
    ENFORCE_LABEL,
    ENFORCE_VERSION_LABEL,
    admit,
    namespace_policy,
    pod_security_violations,
    quota_usage,
)
from infrastructure.simulator.errors import APIError


class FakeStore:
    """A ``StoreView`` over plain dicts: {(group, plural): [objects]}."""

    def __init__(self, *objects: tuple[str, str, dict[str, Any]]) -> None:
        self.objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for group, plural, obj in objects:
            self.add(group, plural, obj)

    def add(self, group: str, plural: str, obj: dict[str, Any]) -> None:
        self.objects.setdefault((group, plural), []).append(obj)

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects.get((group, plural), [])
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for o in self.list(group, plural, namespace):
            if o["metadata"]["name"] == name:
                return o
        return None


def namespace(
    name: str = "team", level: str | None = None, version: str | None = None
) -> tuple[str, str, dict]:
    labels = {}
    if level is not None:
        labels[ENFORCE_LABEL] = level
    if version is not None:
        labels[ENFORCE_VERSION_LABEL] = version
    return "", "namespaces", {"metadata": {"name": name, "labels": labels}}


def container(name: str = "main", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", **extra}


RESTRICTED_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def make_pod(name: str = "web", containers: list[dict] | None = None, ns: str = "team", **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": containers or [container()], **spec},
    }


def restricted_pod(name: str = "web", **spec: Any) -> dict:
    return make_pod(name, [container(securityContext=copy.deepcopy(RESTRICTED_CONTEXT))], **spec)


def forbidden(
    store: FakeStore, obj: dict, operation: str = "CREATE", kind: str = "Pod", old: dict | None = None
):
    with pytest.raises(APIError) as excinfo:
        admit(store, operation, "", "v1", kind, obj["metadata"]["namespace"], obj, old)
    assert excinfo.value.code == 403
    assert excinfo.value.reason == "Forbidden"
    return excinfo.value


# --- Pod Security Admission -------------------------------------------------------------------


def test_the_real_restricted_message_for_a_plain_pod():
    error = forbidden(FakeStore(namespace(level="restricted")), make_pod("nginx", [container("nginx")]))
    assert error.message == (
        'pods "nginx" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != '
        "false "
        '(container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted '
        "capabilities "
        '(container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod '
        "or "
        'container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
        '"nginx" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    assert error.details == {"name": "nginx", "kind": "pods"}


def test_a_namespace_without_the_label_is_privileged():
    store = FakeStore(namespace())
    admit(
        store,
        "CREATE",
        "",
        "v1",
        "Pod",
        "team",
        make_pod(hostNetwork=True, volumes=[{"name": "h", "hostPath": {}}]),
    )


def test_restricted_pods_pass_restricted():
    store = FakeStore(namespace(level="restricted"))
    pod = restricted_pod(
        volumes=[{"name": "d", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}]
    )
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    admit(store, "CREATE", "", "v1", "Pod", "team", pod)


def test_pod_level_settings_cover_the_containers():
    pod = make_pod(
        containers=[
            container(securityContext={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}})
        ],
        securityContext={
            "runAsNonRoot": True,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p"},
        },
    )
    assert pod_security_violations("restricted", pod) == []


def test_baseline_lists_every_violation_in_the_real_order():
    pod = make_pod(
        containers=[
            container(
                "a",
                securityContext={
                    "privileged": True,
                    "capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_TIME"]},
                    "procMount": "Unmasked",
                    "seLinuxOptions": {"type": "spc_t", "user": "root"},
                    "seccompProfile": {"type": "Unconfined"},
                    "appArmorProfile": {"type": "Unconfined"},
                },
                ports=[{"containerPort": 80, "hostPort": 80}, {"containerPort": 9000, "hostPort": 9000}],
            ),
            container(
                "b", securityContext={"privileged": True}, ports=[{"containerPort": 1, "hostPort": 443}]
            ),
        ],
        hostNetwork=True,
        hostPID=True,
        hostIPC=True,
        volumes=[
            {"name": "root", "hostPath": {"path": "/"}},
            {"name": "docker", "hostPath": {"path": "/var"}},
        ],
        securityContext={
            "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "net.core.x"}]
        },
    )
    assert pod_security_violations("baseline", pod) == [
        'forbidden AppArmor profile (container "a" must not set AppArmor profile type to "Unconfined")',
        'non-default capabilities (container "a" must not include "NET_ADMIN", "SYS_TIME" in '
        "securityContext.capabilities.add)",
        "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
        'hostPath volumes (volumes "root", "docker")',
        'hostPort (containers "a", "b" use hostPorts 443, 80, 9000)',
        'privileged (containers "a", "b" must not set securityContext.privileged=true)',
        'procMount (container "a" must not set securityContext.procMount to "Unmasked")',
        'seLinuxOptions (container "a" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may '
        "not "
        "be set)",
        'seccompProfile (container "a" must not set securityContext.seccompProfile.type to "Unconfined")',
        "forbidden sysctls (net.core.x)",
    ]


def test_singular_host_port_and_volume_wording():
    pod = make_pod(
        containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])],
        volumes=[{"name": "host", "hostPath": {"path": "/"}}],
    )
    assert pod_security_violations("baseline", pod) == [
        'hostPath volumes (volume "host")',
        'hostPort (container "main" uses hostPort 8080)',
    ]


def test_restricted_replaces_the_baseline_checks_it_overrides():
    pod = restricted_pod(volumes=[{"name": "host", "hostPath": {"path": "/"}}, {"name": "nfs", "nfs": {}}])
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
    pod["spec"]["containers"][0]["securityContext"]["seccompProfile"]["type"] = "Unconfined"
    assert pod_security_violations("restricted", pod) == [
        'unrestricted capabilities (container "main" must not include "SYS_ADMIN" in '
        "securityContext.capabilities.add)",
        'restricted volume types (volumes "host", "nfs" use restricted volume types "hostPath", "nfs")',
        'seccompProfile (container "main" must not set securityContext.seccompProfile.type to "Unconfined")',
    ]


def test_restricted_explicit_bad_settings():
    pod = make_pod(
        containers=[
            container("a", securityContext={**RESTRICTED_CONTEXT, "runAsNonRoot": False, "runAsUser": 0}),
            container("b", securityContext={**RESTRICTED_CONTEXT, "capabilities": {}}),
        ],
        securityContext={"runAsNonRoot": False, "runAsUser": 0},
    )
    assert pod_security_violations("restricted", pod) == [
        'unrestricted capabilities (container "b" must set securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod and container "a" must not set securityContext.runAsNonRoot=false)',
        'runAsUser=0 (pod and container "a" must not set runAsUser=0)',
    ]


def test_init_and_ephemeral_containers_are_checked_first_to_last():
    pod = make_pod(
        containers=[container("main", securityContext={"privileged": True})],
        initContainers=[container("init", securityContext={"privileged": True})],
        ephemeralContainers=[container("debug", securityContext={"privileged": True})],
    )
    assert pod_security_violations("baseline", pod) == [
        'privileged (containers "init", "main", "debug" must not set securityContext.privileged=true)'
    ]


def test_apparmor_annotations_and_windows_host_process():
    pod = make_pod(
        securityContext={"windowsOptions": {"hostProcess": True}, "appArmorProfile": {"type": "Unconfined"}}
    )
    pod["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/main": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/ok": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/local": "localhost/profile",
    }
    pod["spec"]["containers"].append(
        container("odd", securityContext={"appArmorProfile": {"type": "Custom"}})
    )
    pod["spec"]["containers"].append(
        container("fine", securityContext={"appArmorProfile": {"type": "Localhost"}})
    )
    assert pod_security_violations("baseline", pod) == [
        'forbidden AppArmor profiles (pod and container "odd" and annotation must not set AppArmor profile '
        'type to "Custom", "Unconfined", "container.apparmor.security.beta.kubernetes.io/main="unconfined"")',
        "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
    ]


def test_the_level_and_version_come_from_the_namespace_labels():
    assert namespace_policy(None) == ("privileged", "latest")
    assert namespace_policy(namespace(level="baseline", version="v1.30")[2]) == ("baseline", "v1.30")
    assert namespace_policy(namespace(level="strict", version="whenever")[2]) == ("restricted", "latest")
    store = FakeStore(namespace(level="baseline", version="v1.29"))
    error = forbidden(store, make_pod(hostIPC=True))
    assert error.message == (
        'pods "web" is forbidden: violates PodSecurity "baseline:v1.29": host namespaces (hostIPC=true)'
    )


def test_updates_are_checked_only_when_an_image_changes():
    store = FakeStore(namespace(level="baseline"))
    old = make_pod(hostPID=True)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"a": "b"}
    admit(store, "UPDATE", "", "v1", "Pod", "team", relabelled, old)
    new_image = copy.deepcopy(old)
    new_image["spec"]["containers"][0]["image"] = "busybox:1.37"
    assert "host namespaces (hostPID=true)" in forbidden(store, new_image, "UPDATE", old=old).message


def test_a_pod_without_a_name_yet_is_named_by_resource_only():
    store = FakeStore(namespace(level="baseline"))
    pod = make_pod(hostPID=True)
    pod["metadata"]["name"] = ""
    assert forbidden(store, pod).message.startswith("pods is forbidden: violates PodSecurity")


# --- ResourceQuota --------------------------------------------------------------------------


def quota(name: str, hard: dict[str, str], ns: str = "team", **spec: Any) -> tuple[str, str, dict]:
    return "", "resourcequotas", {"metadata": {"name": name, "namespace": ns}, "spec": {"hard": hard, **spec}}


def sized_pod(
    name: str, cpu: str | None = "1", memory: str | None = "1Gi", phase: str = "Running", **spec
) -> dict:
    limits = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    pod = make_pod(name, [container(resources={"limits": limits})], **spec)
    pod["status"] = {"phase": phase}
    return pod


def stored(*pods: dict) -> list[tuple[str, str, dict]]:
    return [("", "pods", p) for p in pods]


def test_exceeded_quota_has_the_real_message():
    store = FakeStore(quota("compute", {"limits.cpu": "4", "pods": "10"}), *stored(sized_pod("a", "3")))
    error = forbidden(store, sized_pod("web", "2"))
    assert error.message == (
        'pods "web" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=3, '
        "limited: limits.cpu=4"
    )
    assert error.details == {"name": "web", "kind": "pods"}
    admit(store, "CREATE", "", "v1", "Pod", "team", sized_pod("web", "1"))


def test_exceeded_lists_every_exceeded_resource_sorted():
    store = FakeStore(
        quota("q", {"requests.cpu": "1", "requests.memory": "1Gi", "pods": "1"}),
        *stored(sized_pod("a", "500m")),
    )
    assert forbidden(store, sized_pod("web", "600m", "512Mi")).message == (
        'pods "web" is forbidden: exceeded quota: q, requested: '
        "pods=1,requests.cpu=600m,requests.memory=512Mi, "
        "used: pods=1,requests.cpu=500m,requests.memory=1Gi, limited: "
        "pods=1,requests.cpu=1,requests.memory=1Gi"
    )


def test_finished_and_expired_pods_do_not_count():
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).isoformat()
    expired = sized_pod("gone", "3")
    expired["metadata"].update(deletionTimestamp=past, deletionGracePeriodSeconds=30)
    store = FakeStore(
        quota("compute", {"limits.cpu": "2"}),
        *stored(sized_pod("done", "3", phase="Succeeded"), sized_pod("bad", "3", phase="Failed"), expired),
    )
    admit(store, "CREATE", "", "v1", "Pod", "team", sized_pod("web", "2"))


def test_quotas_on_cpu_or_memory_require_every_container_to_say_so():
    store = FakeStore(quota("compute", {"limits.cpu": "4", "limits.memory": "4Gi", "requests.cpu": "4"}))
    pod = make_pod(
        containers=[container("a", resources={"limits": {"cpu": "1"}}), container("b")],
        initContainers=[container("init", resources={"requests": {"cpu": "1"}})],
    )
    assert forbidden(store, pod).message == (
        'pods "web" is forbidden: failed quota: compute: must specify limits.cpu for: b,init; '
        "limits.memory for: a,b,init; requests.cpu for: b"
    )


def test_must_specify_applies_even_when_the_pod_uses_none_of_the_quota():
    store = FakeStore(quota("compute", {"limits.cpu": "4", "requests.storage": "1Gi"}))
    assert forbidden(store, make_pod()).message == (
        'pods "web" is forbidden: failed quota: compute: must specify limits.cpu for: main'
    )
    admit(store, "CREATE", "", "v1", "PersistentVolumeClaim", "team", make_pvc("claim", "1Gi"))


def test_requests_default_to_limits():
    store = FakeStore(quota("compute", {"requests.cpu": "1"}), *stored(sized_pod("a", "800m")))
    assert (
        "requested: requests.cpu=500m, used: requests.cpu=800m"
        in forbidden(store, sized_pod("w", "500m")).message
    )


def test_pod_totals_take_the_largest_init_container_and_overhead():
    pod = make_pod(
        containers=[
            container("a", resources={"requests": {"memory": "1Gi"}}),
            container("b", resources={"requests": {"memory": "1Gi"}}),
        ],
        initContainers=[container("i", resources={"requests": {"memory": "3Gi"}})],
        overhead={"memory": "100Mi"},
    )
    store = FakeStore(quota("mem", {"memory": "3Gi"}))
    assert "requested: memory=3172Mi" in forbidden(store, pod).message


def test_pod_count_quota():
    store = FakeStore(
        quota("count", {"pods": "2", "count/pods": "5"}), *stored(sized_pod("a"), sized_pod("b"))
    )
    assert forbidden(store, sized_pod("c")).message == (
        'pods "c" is forbidden: exceeded quota: count, requested: pods=1, used: pods=2, limited: pods=2'
    )


def test_generate_name_is_shown_when_there_is_no_name_yet():
    store = FakeStore(quota("count", {"pods": "0"}))
    pod = sized_pod("")
    pod["metadata"]["generateName"] = "build-"
    assert forbidden(store, pod).message.startswith('pods "build-" is forbidden: exceeded quota: count')


def test_quotas_are_checked_in_name_order_and_only_in_their_namespace():
    store = FakeStore(
        quota("z-big", {"pods": "0"}),
        quota("a-small", {"pods": "0"}),
        quota("other", {"pods": "0"}, ns="elsewhere"),
    )
    assert "exceeded quota: a-small," in forbidden(store, sized_pod("w")).message
    admit(store, "CREATE", "", "v1", "Pod", "fresh", sized_pod("w", ns="fresh"))


def test_scoped_quotas_only_count_matching_pods():
    store = FakeStore(
        quota("best-effort", {"pods": "0"}, scopes=["BestEffort"]),
        quota("terminating", {"pods": "0"}, scopes=["Terminating"]),
        quota(
            "high",
            {"pods": "0"},
            scopeSelector={
                "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
            },
        ),
    )
    admit(store, "CREATE", "", "v1", "Pod", "team", sized_pod("w"))
    best_effort = make_pod("be")
    assert "exceeded quota: best-effort" in forbidden(store, best_effort).message
    assert "exceeded quota: terminating" in forbidden(store, sized_pod("t", activeDeadlineSeconds=60)).message
    assert "exceeded quota: high" in forbidden(store, sized_pod("h", priorityClassName="high")).message
    pvc = make_pvc("claim", "1Gi")
    admit(store, "CREATE", "", "v1", "PersistentVolumeClaim", "team", pvc)


def make_pvc(name: str, storage: str, storage_class: str | None = None, phase: str = "Bound") -> dict:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name, "namespace": "team"}, "spec": spec, "status": {"phase": phase}}


def test_storage_quota_on_create_and_on_expansion():
    existing = make_pvc("home", "8Gi")
    store = FakeStore(
        quota("storage", {"requests.storage": "10Gi", "persistentvolumeclaims": "5"}),
        ("", "persistentvolumeclaims", existing),
    )
    error = forbidden(store, make_pvc("more", "4Gi"), kind="PersistentVolumeClaim")
    assert error.message == (
        'persistentvolumeclaims "more" is forbidden: exceeded quota: storage, requested: '
        "requests.storage=4Gi, "
        "used: requests.storage=8Gi, limited: requests.storage=10Gi"
    )
    assert error.details == {"name": "more", "kind": "persistentvolumeclaims"}
    admit(store, "CREATE", "", "v1", "PersistentVolumeClaim", "team", make_pvc("more", "2Gi"))
    grown = make_pvc("home", "11Gi")
    assert (
        "requested: requests.storage=3Gi, used: requests.storage=8Gi"
        in forbidden(store, grown, "UPDATE", "PersistentVolumeClaim", old=existing).message
    )
    admit(store, "UPDATE", "", "v1", "PersistentVolumeClaim", "team", make_pvc("home", "9Gi"), existing)
    admit(store, "UPDATE", "", "v1", "PersistentVolumeClaim", "team", make_pvc("home", "1Gi"), existing)


def test_storage_class_quotas_use_the_default_class():
    default_class = {
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        }
    }
    store = FakeStore(
        quota("fast", {"fast.storageclass.storage.k8s.io/requests.storage": "1Gi"}),
        quota("std", {"standard.storageclass.storage.k8s.io/persistentvolumeclaims": "0"}),
        ("storage.k8s.io", "storageclasses", default_class),
    )
    assert (
        "exceeded quota: std" in forbidden(store, make_pvc("a", "1Gi"), kind="PersistentVolumeClaim").message
    )
    assert (
        "exceeded quota: fast"
        in forbidden(store, make_pvc("b", "2Gi", "fast"), kind="PersistentVolumeClaim").message
    )
    admit(store, "CREATE", "", "v1", "PersistentVolumeClaim", "team", make_pvc("c", "1Gi", "fast"))


def test_object_count_quotas():
    secret = {"metadata": {"name": "s2", "namespace": "team"}, "data": {}}
    store = FakeStore(
        quota("objects", {"count/secrets": "1", "count/leases.coordination.k8s.io": "0"}),
        ("", "secrets", {"metadata": {"name": "s1", "namespace": "team"}}),
    )
    error = forbidden(store, secret, kind="Secret")
    assert error.message == (
        'secrets "s2" is forbidden: exceeded quota: objects, requested: count/secrets=1, used: '
        "count/secrets=1, "
        "limited: count/secrets=1"
    )
    lease = {"metadata": {"name": "l", "namespace": "team"}, "spec": {}}
    with pytest.raises(APIError) as excinfo:
        admit(store, "CREATE", "coordination.k8s.io", "v1", "Lease", "team", lease)
    assert excinfo.value.message.startswith(
        'leases.coordination.k8s.io "l" is forbidden: exceeded quota: objects'
    )


def test_quota_usage_reports_status_used_for_every_hard_resource():
    store = FakeStore(
        quota(
            "compute", {"limits.cpu": "4", "requests.memory": "8Gi", "pods": "10", "requests.storage": "1Ti"}
        ),
        quota("objects", {"count/secrets": "3", "services": "2"}),
        *stored(
            sized_pod("a", "1500m", "1Gi"), sized_pod("b", "500m", "512Mi"), sized_pod("c", phase="Failed")
        ),
        ("", "persistentvolumeclaims", make_pvc("home", "10Gi")),
        ("", "secrets", {"metadata": {"name": "s", "namespace": "team"}}),
    )
    assert quota_usage(store, "team") == {
        "compute": {"limits.cpu": "2", "pods": "2", "requests.memory": "1536Mi", "requests.storage": "10Gi"},
        "objects": {"count/secrets": "1", "services": "0"},
    }


def test_kinds_and_operations_quota_ignores():
    store = FakeStore(quota("none", {"pods": "0", "count/secrets": "0"}))
    admit(store, "UPDATE", "", "v1", "Pod", "team", sized_pod("w"), sized_pod("w"))
    admit(store, "DELETE", "", "v1", "Secret", "team", {"metadata": {"name": "s", "namespace": "team"}})
    admit(store, "CREATE", "example.com", "v1", "Widget", "team", {"metadata": {"name": "w"}})
    admit(store, "CREATE", "", "v1", "Namespace", None, {"metadata": {"name": "n"}})
