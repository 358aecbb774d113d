"""Readiness checks against the simulated cluster's profiles (a real API server over HTTP), plus the pure
helpers they are built from. Per-node verdicts are asserted exactly: node name → status."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client

from infrastructure.gateway import Forbidden, Gateway, NotFound
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.nodeinfo import Status
from infrastructure.readiness import (
    Report,
    capacity_results,
    cpu_millicores,
    memory_mib,
    node_exclusion,
    pod_requests,
    probe_pod,
    proxy_results,
    run_checks,
    selector_matches,
    service_cidrs,
    tolerates,
    version_results,
)
from infrastructure.simulator.profiles import load_profile

pytestmark = pytest.mark.django_db

NAMESPACE = "coderadmin-environments"


@pytest.fixture
def cluster(simulated_cluster):
    return simulated_cluster


def _gateway(handle) -> Gateway:
    return Gateway(handle.api_client)


def _run(handle, profile: str | None = None, **changes: Any) -> Report:
    if profile:
        load_profile(handle.cluster, profile)
    settings = InfrastructureSettings.load()
    for name, value in changes.items():
        setattr(settings, name, value)
    return run_checks(_gateway(handle), settings)


def _by_subject(report: Report, check: str) -> dict[str, Status]:
    return {r.subject: r.status for r in report.results if r.check == check and r.subject}


def _one(report: Report, check: str) -> Any:
    rows = [r for r in report.results if r.check == check and not r.subject]
    assert len(rows) == 1, rows
    return rows[0]


def test_cvm_ready_profile_passes_everything(cluster):
    report = _run(cluster, "cvm-ready")

    assert report.failures == []
    assert _by_subject(report, "nodes") == {
        "ubuntu-focal-1": Status.PASS,
        "ubuntu-jammy-1": Status.PASS,
        "ubuntu-noble-1": Status.PASS,
    }
    assert _one(report, "version").status == Status.PASS
    assert "1.17" in _one(report, "version").reason and "1.25" in _one(report, "version").reason
    assert _one(report, "admission").status == Status.PASS
    assert _one(report, "proxy").status == Status.PASS
    assert _one(report, "namespace").status == Status.PASS
    assert _one(report, "storage").reason.endswith("the cluster default gp3 is used.")
    assert _one(report, "permissions").status == Status.PASS
    assert _one(report, "runtimeclass").status == Status.INFO
    # 7910m / 2000m → 3 per small node; 15890m / 2000m → 7 on the big one.
    assert [r.reason.split(": ")[-1][:1] for r in report.results if r.check == "capacity" and r.subject] == [
        "3",
        "3",
        "7",
    ]
    assert _one(report, "capacity").reason.startswith("13 more environment(s)")
    assert report.simulated is True
    assert report.cluster_cidrs  # the nodes' pod ranges, for the bridge CIDR validation
    focal = next(r for r in report.results if r.subject == "ubuntu-focal-1" and r.check == "nodes")
    assert "shiftfs" in focal.reason  # kernel 5.4: the ID-mapped mounts note


def test_not_ready_profile_fails_nodes_admission_and_istio(cluster):
    report = _run(cluster, "not-ready")

    assert _by_subject(report, "nodes") == {
        "al2-1": Status.FAIL,
        "bottlerocket-1": Status.FAIL,
        "centos7-1": Status.FAIL,
    }
    admission = _one(report, "admission")
    assert admission.status == Status.FAIL
    assert "violates PodSecurity" in admission.reason
    assert "pod-security.kubernetes.io/enforce=privileged" in admission.reason
    proxy = _one(report, "proxy")
    assert proxy.status == Status.FAIL
    assert "istio-injection=enabled" in proxy.reason
    assert "namespace.sidecar-injector.istio.io" in proxy.reason
    assert _one(report, "capacity").status == Status.WARN
    assert report.status == Status.FAIL


def test_demo_profile_is_mixed(cluster):
    report = _run(cluster, "demo")

    assert _by_subject(report, "nodes") == {
        "legacy-al2-c1": Status.FAIL,
        "pool-cos-b1": Status.FAIL,
        "pool-ubuntu-a1": Status.PASS,
        "pool-ubuntu-a2": Status.PASS,
    }
    cos = next(r for r in report.results if r.subject == "pool-cos-b1")
    assert "Container-Optimized OS" in cos.reason
    # Only the usable nodes count for capacity.
    assert set(_by_subject(report, "capacity")) == {"pool-ubuntu-a1", "pool-ubuntu-a2"}


def test_restricted_pod_security_is_reported_with_the_admission_message(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    _gateway(cluster).patch(
        "Namespace",
        None,
        NAMESPACE,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    report = _run(cluster)

    admission = _one(report, "admission")
    assert admission.status == Status.FAIL
    assert 'violates PodSecurity "restricted:latest"' in admission.reason
    assert "privileged" in admission.reason
    assert _by_subject(report, "nodes") == dict.fromkeys(
        ("ubuntu-focal-1", "ubuntu-jammy-1", "ubuntu-noble-1"), Status.PASS
    )


def _istio_injector(namespace_selector: dict, object_selector: dict | None = None) -> dict:
    webhook = {
        "name": "rev.namespace.sidecar-injector.istio.io",
        "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject"}},
        "rules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
        ],
        "namespaceSelector": namespace_selector,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    if object_selector is not None:
        webhook["objectSelector"] = object_selector
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-revision-tag-default"},
        "webhooks": [webhook],
    }


def test_istio_installed_but_not_reaching_the_namespace_is_a_warning(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    gateway = _gateway(cluster)
    gateway.ensure_namespace("istio-system")
    gateway.create(_istio_injector({"matchLabels": {"istio-injection": "enabled"}}))
    report = _run(cluster)

    proxy = _one(report, "proxy")
    assert proxy.status == Status.WARN
    assert "istio-revision-tag-default" in proxy.reason
    assert report.failures == []


def test_istio_revision_label_on_the_namespace_fails(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    gateway = _gateway(cluster)
    gateway.create(
        _istio_injector(
            {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["stable"]}]}
        )
    )
    gateway.patch("Namespace", None, NAMESPACE, {"metadata": {"labels": {"istio.io/rev": "stable"}}})
    report = _run(cluster)

    proxy = _one(report, "proxy")
    assert proxy.status == Status.FAIL
    assert "istio.io/rev=stable" in proxy.reason
    assert "rev.namespace.sidecar-injector.istio.io" in proxy.reason


def test_istio_ambient_mode_label_fails(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    gateway = _gateway(cluster)
    gateway.ensure_namespace("istio-system")
    gateway.patch(
        "Namespace", None, NAMESPACE, {"metadata": {"labels": {"istio.io/dataplane-mode": "ambient"}}}
    )
    report = _run(cluster)

    proxy = _one(report, "proxy")
    assert proxy.status == Status.FAIL
    assert "ambient" in proxy.reason


def test_sysbox_nodes_profile_with_the_runtimeclass_backend(cluster):
    report = _run(cluster, "sysbox-nodes", cvm_backend=CvmBackend.RUNTIMECLASS)

    # The RuntimeClass schedules onto sysbox-runtime=running nodes only.
    assert _by_subject(report, "nodes") == {
        "plain-1": Status.INFO,
        "sysbox-containerd-1": Status.PASS,
        "sysbox-containerd-2": Status.PASS,
        "sysbox-crio-1": Status.PASS,
    }
    assert _by_subject(report, "runtimeclass") == {
        "plain-1": Status.WARN,
        "sysbox-containerd-1": Status.PASS,
        "sysbox-containerd-2": Status.PASS,
        "sysbox-crio-1": Status.PASS,
    }
    assert _one(report, "runtimeclass").status == Status.PASS
    assert "sysbox-runtime=running" in _one(report, "runtimeclass").reason
    crio = next(r for r in report.results if r.check == "runtimeclass" and r.subject == "sysbox-crio-1")
    assert "io.kubernetes.cri-o.userns-mode" in crio.reason
    assert _one(report, "admission").status == Status.PASS
    assert "sysbox RuntimeClass pod" in _one(report, "admission").reason
    assert report.failures == []


def test_runtimeclass_backend_on_a_cluster_without_sysbox_fails(cluster):
    report = _run(cluster, "cvm-ready", cvm_backend=CvmBackend.RUNTIMECLASS)

    runtime_rows = [r for r in report.results if r.check == "runtimeclass"]
    assert [r.status for r in runtime_rows] == [Status.FAIL, Status.FAIL]
    assert "does not exist" in runtime_rows[0].reason
    assert "No node is labelled sysbox-runtime=running" in runtime_rows[1].reason


def test_nodes_outside_the_selector_are_not_used_and_none_left_fails(cluster):
    report = _run(cluster, "cvm-ready", cvm_node_selector={"pool": "cvm"})

    assert _by_subject(report, "nodes") == dict.fromkeys(
        ("ubuntu-focal-1", "ubuntu-jammy-1", "ubuntu-noble-1"), Status.INFO
    )
    rows = [r for r in report.results if r.check == "nodes"]
    assert all("Not used for CVMs" in r.reason for r in rows if r.subject)
    assert _one(report, "nodes").status == Status.FAIL


def test_missing_namespace_and_storage_class(cluster):
    report = _run(cluster, "cvm-ready", environments_namespace="absent-ns", storage_class="fast-ssd")

    assert report.namespace_missing is True
    assert _one(report, "namespace").status == Status.FAIL
    assert _one(report, "admission").status == Status.INFO
    storage = _one(report, "storage")
    assert storage.status == Status.FAIL
    assert "fast-ssd does not exist" in storage.reason


def test_named_storage_class_that_exists_passes(cluster):
    report = _run(cluster, "demo", storage_class="premium-immediate")
    assert _one(report, "storage").status == Status.PASS


def test_no_default_storage_class_fails(cluster):
    # The default profile: namespaces only, no nodes and no storage classes.
    cluster.cluster.ensure_namespace(NAMESPACE)
    report = _run(cluster)

    assert "no default one" in _one(report, "storage").reason
    assert _one(report, "nodes").status == Status.FAIL


def test_service_account_without_rbac_gets_denied_rows(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    token = cluster.token_for_service_account("coderadmin", "coderadmin")
    gateway = Gateway(cluster.api_client_for_token(token))
    report = run_checks(gateway, InfrastructureSettings.load())

    denied = [r for r in report.results if r.check == "permissions"]
    assert denied and all(r.status == Status.FAIL for r in denied)
    assert "list nodes" in {r.subject for r in denied}
    assert "May not create pods in namespace coderadmin-environments" in " ".join(r.reason for r in denied)
    assert _one(report, "nodes").reason.startswith("The product's service account may not read this")


def test_runtimeclass_that_may_not_be_read_is_not_called_missing(cluster):
    load_profile(cluster.cluster, "sysbox-nodes")
    token = cluster.token_for_service_account("coderadmin", "coderadmin")
    settings = InfrastructureSettings.load()
    settings.cvm_backend = CvmBackend.RUNTIMECLASS
    report = run_checks(Gateway(cluster.api_client_for_token(token)), settings)

    [row] = [r for r in report.results if r.check == "runtimeclass"]
    assert row.status == Status.FAIL
    assert row.reason.startswith("The product's service account may not read this")


def test_wrong_credentials_say_unauthorized(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    report = run_checks(Gateway(cluster.api_client_for_token("not-a-token")), InfrastructureSettings.load())

    assert len(report.results) == 1
    assert report.results[0].check == "cluster"
    assert report.results[0].status == Status.FAIL
    assert report.results[0].reason.startswith("Unauthorized:")


@pytest.fixture
def closed_port_client() -> Iterator[client.ApiClient]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    api = client.ApiClient(configuration)
    yield api
    api.close()


def test_unreachable_api_says_unavailable(closed_port_client):
    progress: list[tuple[int, int, str]] = []
    report = run_checks(
        Gateway(closed_port_client, timeout=(1.0, 1.0)),
        InfrastructureSettings.load(),
        lambda *step: progress.append(step),
    )

    assert [(r.check, r.status) for r in report.results] == [("cluster", Status.FAIL)]
    assert report.results[0].reason.startswith("Unavailable:")
    assert progress[-1] == (9, 9, "Done")


def test_progress_is_reported_for_every_step(cluster):
    load_profile(cluster.cluster, "cvm-ready")
    steps: list[tuple[int, int, str]] = []
    run_checks(_gateway(cluster), InfrastructureSettings.load(), lambda *step: steps.append(step))

    assert [done for done, _, _ in steps] == list(range(10))
    assert steps[0][2] == "Kubernetes version"


# --- pure helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("git_version", "status"),
    [
        ("v1.24.17", Status.FAIL),
        ("v1.17.0", Status.FAIL),
        ("v1.27.16-eks-a737599", Status.WARN),
        ("v1.31.2-gke.1000", Status.PASS),
        ("not a version", Status.FAIL),
    ],
)
def test_version_results(git_version, status):
    [result] = version_results({"gitVersion": git_version})
    assert result.status == status


def test_old_version_names_both_minimums():
    [result] = version_results({"gitVersion": "v1.22.3"})
    assert "1.25" in result.reason and "1.17" in result.reason


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "b"}, True),
        ({"matchLabels": {"a": "b"}}, {"a": "c"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}, {"a": "y"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["false"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["false"]}]},
            {"a": "false"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selector_matches(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "cvm", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "operator": "Equal", "value": "gpu"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerates(toleration, expected):
    taint = {"key": "dedicated", "value": "cvm", "effect": "NoSchedule"}
    assert tolerates([toleration], taint) is expected


def _node(name: str = "n1", labels: dict | None = None, taints: list | None = None, **spec: Any) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or [], **spec}}


def test_node_exclusion_reasons():
    taint = {"key": "dedicated", "value": "cvm", "effect": "NoSchedule"}
    assert node_exclusion(_node(labels={"pool": "cvm"}), {"pool": "cvm"}, []) == ""
    assert "pool=cvm" in node_exclusion(_node(), {"pool": "cvm"}, [])
    assert "dedicated=cvm:NoSchedule" in node_exclusion(_node(taints=[taint]), {}, [])
    assert node_exclusion(_node(taints=[taint]), {}, [{"key": "dedicated", "operator": "Exists"}]) == ""
    prefer = {"key": "x", "value": "", "effect": "PreferNoSchedule"}
    assert node_exclusion(_node(taints=[prefer]), {}, []) == ""
    assert "cordoned" in node_exclusion(_node(unschedulable=True), {}, [])


@pytest.mark.parametrize(
    ("value", "millicores"),
    [("7910m", 7910), ("8", 8000), ("0.5", 500), ("", 0), ("junk", 0), (None, 0), (2, 2000)],
)
def test_cpu_millicores(value, millicores):
    assert cpu_millicores(value) == millicores


@pytest.mark.parametrize(
    ("value", "mib"),
    [("30310Mi", 30310), ("14Gi", 14336), ("1048576", 1), ("2G", 1907), ("512Ki", 0), ("x", 0)],
)
def test_memory_mib(value, mib):
    assert memory_mib(value) == mib


def test_pod_requests_take_the_larger_of_containers_and_init():
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "250m"}}},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        }
    }
    assert pod_requests(pod) == (2000, 1024)


def test_capacity_counts_running_pods_only():
    settings = InfrastructureSettings(default_cpu_millicores=1000, default_memory_mib=1024)
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}}

    def pod(phase: str) -> dict:
        return {
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": "1500m"}}}]},
            "status": {"phase": phase},
        }

    results = capacity_results([node], [pod("Running"), pod("Succeeded"), pod("Pending")], settings)
    # 4000m - 3000m = 1000m → 1 environment of 1000m.
    assert results[1].subject == "n1"
    assert "CPU 3000m of 4000m requested" in results[1].reason
    assert results[0].reason.startswith("1 more environment(s)")
    full = capacity_results([node], [pod("Running")] * 3, settings)
    assert full[0].status == Status.WARN


def test_proxy_object_selector_that_misses_our_pods_is_only_a_warning():
    settings = InfrastructureSettings()
    pod_labels = probe_pod(settings)["metadata"]["labels"]
    injector = _istio_injector(
        {"matchExpressions": [{"key": "istio-injection", "operator": "DoesNotExist"}]},
        {"matchLabels": {"sidecar.istio.io/inject": "true"}},
    )
    [result] = proxy_results(NAMESPACE, {}, pod_labels, [injector], istio_installed=True)
    assert result.status == Status.WARN


def test_linkerd_injector_reaching_the_namespace_fails():
    linkerd = {
        "metadata": {"name": "linkerd-proxy-injector-webhook-config"},
        "webhooks": [{"name": "linkerd-proxy-injector.linkerd.io", "rules": [], "namespaceSelector": {}}],
    }
    [result] = proxy_results(NAMESPACE, {}, {}, [linkerd], istio_installed=False)
    assert result.status == Status.FAIL


def test_probe_pod_is_the_real_supervising_pod():
    pod = probe_pod(InfrastructureSettings())
    container = pod["spec"]["containers"][0]
    assert container["securityContext"] == {"privileged": True}
    assert {v["hostPath"]["path"] for v in pod["spec"]["volumes"] if "hostPath" in v} == {
        "/lib/modules",
        "/usr/src",
    }
    assert pod["metadata"]["namespace"] == NAMESPACE


class _ServiceCidrGateway:
    """An in-process stand-in for the one Gateway call :func:`service_cidrs` makes."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def list(self, kind: str) -> dict:
        assert kind == "ServiceCIDR"
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_service_cidrs_are_read_where_the_api_exists():
    answer = {"items": [{"spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}}]}
    assert service_cidrs(_ServiceCidrGateway(answer)) == ["10.96.0.0/12", "fd00:10:96::/112"]
    assert service_cidrs(_ServiceCidrGateway(NotFound("no such API"))) == []
    assert service_cidrs(_ServiceCidrGateway(Forbidden("denied"))) == []


@given(st.text(max_size=40) | st.integers() | st.none() | st.floats(allow_nan=True))
def test_quantity_parsers_never_raise(value):
    assert cpu_millicores(value) >= 0
    assert memory_mib(value) >= 0


@given(
    st.dictionaries(
        st.text(max_size=5), st.one_of(st.none(), st.text(max_size=5), st.lists(st.text(max_size=3)))
    ),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
)
def test_selector_matching_never_raises_on_odd_selectors(matchlabels, labels):
    assert isinstance(selector_matches({"matchLabels": labels}, labels), bool)
    expressions = [
        {"key": k, "operator": "In", "values": v if isinstance(v, list) else []}
        for k, v in matchlabels.items()
    ]
    assert isinstance(selector_matches({"matchExpressions": expressions}, labels), bool)
