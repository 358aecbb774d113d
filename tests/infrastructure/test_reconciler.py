"""The drift reconciler against the simulated cluster over HTTP (official client, product gateway).

Drift is made the way it happens in life: objects deleted or created behind the database's back
through the cluster's API, rows left in a state by a task that never ran.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError
from kubernetes import client

from coderadmin.models import AuditEntry
from environments import provisioner, tasks
from environments.models import Environment, EnvironmentEvent
from environments.states import State
from infrastructure import gateway as gw
from infrastructure import labels, reconciler
from infrastructure.models import InfrastructureSettings
from infrastructure.reconciler import POD_DISAPPEARED, reconcile
from tests.environments import cluster_support as cs
from tests.environments.factories import EnvironmentFactory, ImageFactory, ImageTagFactory, OwnerFactory

NAMESPACE = cs.NAMESPACE
LISTS = [("list", kind) for kind in reconciler.KINDS]


@pytest.fixture
def cluster(simulated_cluster):
    """The bare simulated cluster (no nodes: pods stay Pending) as the product's cluster."""
    gw.reset_api_client(simulated_cluster.api_client)
    gw.Gateway(simulated_cluster.api_client).ensure_namespace(NAMESPACE)
    try:
        yield simulated_cluster
    finally:
        gw.reset_api_client(None)


@pytest.fixture(autouse=True)
def private_cache(settings, request):
    """A cache of this test's own: the sweep lock must not be shared with parallel test processes."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


@pytest.fixture
def gateway(cluster):
    return cs.CountingGateway(cluster.api_client)


class Sent:
    """The tasks handed to the broker (these tests run no worker)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple]] = []
        for name in ("build_environment", "stop_environment", "delete_environment"):
            task = getattr(tasks, name)
            monkeypatch.setattr(
                task, "delay", lambda *args, _name=task.name: self.calls.append((_name, args))
            )


@pytest.fixture
def sent(monkeypatch):
    return Sent(monkeypatch)


def provisioned(
    gateway: gw.Gateway, state: State = State.RUNNING, name: str = "web", **fields: Any
) -> Environment:
    """An environment whose claim, policy and pod the provisioner created, then put in ``state`` with
    its row last written ten minutes ago (before any sweep of the test)."""
    cs.configure()
    image = ImageFactory()
    ImageTagFactory(image=image, tag="1.0")
    env = EnvironmentFactory(name=name, image=image, tag="1.0", generation=1, **fields)
    env.assign_kubernetes_names(InfrastructureSettings.load())
    env.save()
    provisioner.build(env.pk, env.generation, gateway)
    past = timezone.now() - timedelta(minutes=10)
    Environment.objects.filter(pk=env.pk).update(state=state, updated_at=past, build_started_at=past)
    return Environment.objects.get(pk=env.pk)


def delete_pod(cluster, env: Environment) -> None:
    client.CoreV1Api(cluster.api_client).delete_namespaced_pod(
        env.pod_name, NAMESPACE, grace_period_seconds=0
    )
    assert gw.Gateway(cluster.api_client).get_or_none("Pod", NAMESPACE, env.pod_name) is None


def reload(env: Environment) -> Environment:
    return Environment.objects.get(pk=env.pk)


def disappeared_events(env: Environment) -> int:
    return EnvironmentEvent.objects.filter(environment_id=env.pk, message=POD_DISAPPEARED).count()


def stray(cluster, environment_id: int, suffix: str = "stray") -> dict[str, str]:
    """One labelled object of each kind for ``environment_id``, created through the API."""
    meta = {"name": f"{suffix}-{environment_id}", "labels": labels.environment_labels(environment_id)}
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_pod(
        NAMESPACE, {"metadata": meta, "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}
    )
    core.create_namespaced_secret(NAMESPACE, {"metadata": meta, "stringData": {"k": "v"}})
    core.create_namespaced_persistent_volume_claim(
        NAMESPACE,
        {
            "metadata": meta,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    client.NetworkingV1Api(cluster.api_client).create_namespaced_network_policy(
        NAMESPACE, {"metadata": meta, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    )
    return dict.fromkeys(reconciler.KINDS, meta["name"])


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 6])
def test_a_sweep_without_drift_costs_four_lists_whatever_the_number_of_environments(gateway, sent, count):
    envs = [provisioned(gateway, name=f"env{i}") for i in range(count)]
    gateway.calls.clear()

    report = reconcile(gateway)

    assert gateway.calls == LISTS
    assert report.fixes == 0 and not report.errors
    assert report.listed["Pod"] == count and report.listed["PersistentVolumeClaim"] == count
    assert {reload(env).state for env in envs} == {State.RUNNING}


@pytest.mark.django_db
def test_a_running_environment_whose_pod_was_deleted_behind_our_back_turns_error(cluster, gateway, sent):
    env = provisioned(gateway)
    other = provisioned(gateway, name="other")
    delete_pod(cluster, env)

    report = reconcile(gateway)

    env = reload(env)
    assert env.state == State.ERROR
    assert env.status_reason == POD_DISAPPEARED
    assert report.pods_missing == [f"{env.owner.username}/web"]
    event = EnvironmentEvent.objects.get(environment=env, message=POD_DISAPPEARED)
    assert event.type == EnvironmentEvent.Type.ERROR
    assert AuditEntry.objects.filter(action="environment.error", target_id=str(env.pk)).exists()
    assert reload(other).state == State.RUNNING


@pytest.mark.django_db
def test_a_second_sweep_fixes_nothing_again(cluster, gateway, sent):
    env = provisioned(gateway)
    delete_pod(cluster, env)
    reconcile(gateway)

    report = reconcile(gateway)

    assert report.fixes == 0
    assert disappeared_events(env) == 1


@pytest.mark.django_db
def test_the_rebuild_setting_rebuilds_an_environment_whose_pod_disappeared(
    cluster, gateway, sent, settings, django_capture_on_commit_callbacks
):
    settings.RECONCILE_POD_MISSING_ACTION = "rebuild"
    env = provisioned(gateway)
    delete_pod(cluster, env)

    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(gateway)

    env = reload(env)
    assert env.state == State.BUILDING
    assert env.generation == 2
    assert report.rebuilt == report.pods_missing == [f"{env.owner.username}/web"]
    assert disappeared_events(env) == 1
    assert ("environments.build", (env.pk, 2)) in sent.calls


@pytest.mark.django_db
def test_a_building_environment_whose_pod_was_seen_and_is_gone_turns_error(cluster, gateway, sent):
    env = provisioned(gateway, state=State.BUILDING)
    EnvironmentEvent.objects.create(
        environment=env, source=EnvironmentEvent.Source.CLUSTER, message="Scheduled: assigned to node-1"
    )
    Environment.objects.filter(pk=env.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    delete_pod(cluster, env)

    reconcile(gateway)

    assert reload(env).state == State.ERROR
    assert disappeared_events(env) == 1


@pytest.mark.django_db
def test_a_building_environment_with_no_trace_of_its_pod_has_lost_its_task_and_is_requeued(
    cluster, gateway, sent
):
    env = provisioned(gateway, state=State.BUILDING)
    delete_pod(cluster, env)

    report = reconcile(gateway)

    assert reload(env).state == State.BUILDING
    assert report.pods_missing == []
    assert report.requeued == 1
    assert sent.calls == [("environments.build", (env.pk, env.generation))]


@pytest.mark.django_db
def test_a_row_changed_after_the_list_is_left_for_the_next_sweep(cluster, gateway, sent):
    env = provisioned(gateway)
    delete_pod(cluster, env)

    class TouchingGateway(cs.CountingGateway):
        def list(self, kind, namespace=None, **query):
            result = super().list(kind, namespace, **query)
            if kind == "Pod":  # a user action lands between the list and the fix
                Environment.objects.filter(pk=env.pk).update(updated_at=timezone.now())
            return result

    report = reconcile(TouchingGateway(cluster.api_client))

    assert reload(env).state == State.RUNNING
    assert report.pods_missing == []


@pytest.mark.django_db
def test_objects_labelled_for_an_environment_that_no_longer_exists_are_deleted(cluster, gateway, sent):
    kept = provisioned(gateway)
    names = stray(cluster, 999_999)
    gateway.calls.clear()

    report = reconcile(gateway)

    assert sorted(report.orphans_deleted) == sorted(f"{kind} {name}" for kind, name in names.items())
    assert gateway.calls == LISTS + [("delete", kind) for kind in reconciler.KINDS]
    assert cs.cluster_objects(gateway) == {
        ("Pod", kept.pod_name),
        ("PersistentVolumeClaim", kept.pvc_name),
        ("NetworkPolicy", kept.network_policy_name),
    }
    audits = AuditEntry.objects.filter(action="reconciler.delete_orphan")
    assert audits.count() == 4
    assert audits.filter(target_repr=f"Pod {NAMESPACE}/stray-999999").exists()


@pytest.mark.django_db
def test_labelled_objects_without_an_environment_id_are_not_touched(cluster, gateway, sent):
    meta = {"name": "ours-but-no-id", "labels": {labels.LABEL_MANAGED_BY: labels.APP_NAME}}
    client.CoreV1Api(cluster.api_client).create_namespaced_secret(
        NAMESPACE, {"metadata": meta, "stringData": {"k": "v"}}
    )

    report = reconcile(gateway)

    assert report.orphans_deleted == []
    assert gateway.get_or_none("Secret", NAMESPACE, "ours-but-no-id") is not None


@pytest.mark.django_db
@pytest.mark.parametrize("state", [State.CREATING, State.BUILDING, State.TURNING_OFF])
def test_environments_stuck_past_the_build_timeout_turn_error(cluster, gateway, sent, state):
    env = provisioned(gateway, state=state)
    later = timezone.now() + timedelta(seconds=InfrastructureSettings.load().build_timeout_seconds)

    report = reconcile(gateway, now=later)

    env = reload(env)
    assert env.state == State.ERROR
    assert env.status_reason == f"Stuck in {state.label} for more than 15 minutes (found by the reconciler)."
    assert report.timed_out == [f"{env.owner.username}/web"]
    assert (
        EnvironmentEvent.objects.filter(environment=env, type="error", message=env.status_reason).count() == 1
    )


@pytest.mark.django_db
def test_environments_within_the_build_timeout_are_not_failed(cluster, gateway, sent):
    env = provisioned(gateway, state=State.BUILDING)

    report = reconcile(gateway)

    assert report.timed_out == []
    assert reload(env).state == State.BUILDING


@pytest.mark.django_db
def test_a_deleting_environment_is_requeued_not_failed_when_stuck(cluster, gateway, sent):
    env = provisioned(gateway, state=State.DELETING)
    later = timezone.now() + timedelta(hours=1)

    report = reconcile(gateway, now=later)

    assert reload(env).state == State.DELETING
    assert report.timed_out == []
    assert sent.calls == [("environments.delete", (env.pk, env.generation))]


@pytest.mark.django_db
def test_when_the_cluster_cannot_be_listed_the_database_checks_still_run(cluster, gateway, sent):
    env = provisioned(gateway, state=State.BUILDING)
    delete_pod(cluster, env)

    class DownGateway(cs.CountingGateway):
        def list(self, kind, namespace=None, **query):
            raise gw.Unavailable("connection refused")

    report = reconcile(DownGateway(cluster.api_client), now=timezone.now() + timedelta(hours=1))

    assert report.errors == ["the cluster could not be listed: connection refused"]
    assert report.listed == {}
    assert report.timed_out == [f"{env.owner.username}/web"]


@pytest.mark.django_db
def test_an_unreachable_broker_is_reported_and_the_other_fixes_stand(cluster, gateway, monkeypatch):
    """The broker is the one boundary faked here: publishing fails as kombu reports it."""
    env = provisioned(gateway)
    stuck = provisioned(gateway, state=State.TURNING_OFF, name="stuck")
    delete_pod(cluster, env)

    def unreachable(*args):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.stop_environment, "delay", unreachable)

    report = reconcile(gateway)

    assert report.errors == [
        "lost tasks were not re-enqueued: the task broker is unreachable: [Errno 111] Connection refused"
    ]
    assert reload(env).state == State.ERROR
    assert reload(stuck).state == State.TURNING_OFF


@pytest.mark.django_db
def test_a_spent_time_budget_stops_the_sweep(cluster, gateway, sent):
    env = provisioned(gateway)
    delete_pod(cluster, env)
    stray(cluster, 999_999)

    report = reconcile(gateway, budget_seconds=0)

    assert report.truncated
    assert report.fixes == 0
    assert reload(env).state == State.RUNNING
    assert "The time budget ran out; the next sweep continues." in report.lines()


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_do_not_overlap_and_fix_each_drift_once(cluster, sent):
    env = provisioned(gw.Gateway(cluster.api_client))
    delete_pod(cluster, env)
    stray(cluster, 999_999)
    one_returned = threading.Event()

    class Held(cs.CountingGateway):
        """The sweep that got the lock lists only once the other sweep has returned."""

        def list(self, kind, namespace=None, **query):
            one_returned.wait(30)
            return super().list(kind, namespace, **query)

    reports: list[reconciler.ReconcileReport] = []
    failures: list[BaseException] = []
    start = threading.Barrier(2, timeout=30)

    def sweep() -> None:
        try:
            start.wait()
            reports.append(reconcile(Held(cluster.api_client)))
        except BaseException as exc:
            failures.append(exc)
        finally:
            one_returned.set()
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures
    assert sorted(report.busy for report in reports) == [False, True]
    busy = next(report for report in reports if report.busy)
    assert busy.lines() == ["Another sweep is running; this one did nothing."]
    worker = next(report for report in reports if not report.busy)
    assert len(worker.pods_missing) == 1 and len(worker.orphans_deleted) == 4
    assert disappeared_events(env) == 1
    assert AuditEntry.objects.filter(action="reconciler.delete_orphan").count() == 4
    assert reconcile(gw.Gateway(cluster.api_client)).fixes == 0  # the lock was released


@pytest.mark.django_db
def test_a_fix_claims_its_row_only_if_nobody_changed_it_since_it_was_read(cluster, gateway, sent):
    env = provisioned(gateway)
    row = Environment.objects.filter(pk=env.pk).values("pk", "state", "updated_at").get()
    other_sweep = dict(row)

    assert reconciler._claim(row)
    assert not reconciler._claim(other_sweep)


@pytest.mark.django_db(transaction=True)
def test_an_environment_whose_task_was_lost_is_built_by_a_real_worker_after_a_sweep(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        gateway = gw.Gateway(handle.api_client)
        cs.configure()
        image = cs.image("ghcr.io/coderadmin/example-plain")
        env = EnvironmentFactory(owner=OwnerFactory(), image=image, tag="1", generation=1, name="lost")
        env.assign_kubernetes_names(InfrastructureSettings.load())
        env.save()  # Creating, and its build task never reached a worker
        Environment.objects.filter(pk=env.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

        with cs.celery_worker():
            report = reconcile(gateway)
            cs.wait_state(env, State.BUILDING, State.RUNNING)
            cs.eventually(lambda: gateway.get_or_none("Pod", NAMESPACE, env.pod_name), what="the pod")

        assert report.requeued == 1


@pytest.mark.django_db
def test_the_management_command_prints_the_report(cluster, gateway, sent):
    env = provisioned(gateway)
    delete_pod(cluster, env)
    out = StringIO()

    call_command("reconcile", stdout=out)

    text = out.getvalue()
    assert f"Reconciled namespace {NAMESPACE}" in text
    assert f"Pods missing: 1 ({env.owner.username}/web)" in text
    assert reload(env).state == State.ERROR


@pytest.fixture
def unreachable_cluster():
    """The product's client pointed at a port nobody listens on."""
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    gw.reset_api_client(client.ApiClient(configuration))
    try:
        yield
    finally:
        gw.reset_api_client(None)


@pytest.mark.django_db
def test_the_management_command_fails_when_the_cluster_cannot_be_listed(unreachable_cluster, sent):
    out = StringIO()

    with pytest.raises(CommandError, match="1 error"):
        call_command("reconcile", stdout=out)
    assert "Error: the cluster could not be listed: the Kubernetes API could not be reached" in out.getvalue()


@pytest.mark.django_db
def test_the_beat_task_runs_a_sweep(cluster, gateway, sent):
    env = provisioned(gateway)
    delete_pod(cluster, env)

    reconciler.reconcile_task.apply()

    assert reload(env).state == State.ERROR


def test_settings_are_read_with_defaults(settings):
    assert reconciler.interval_seconds() == 60
    assert reconciler.pod_missing_action() == "error"
    settings.RECONCILE_INTERVAL_SECONDS = 30
    settings.RECONCILE_POD_MISSING_ACTION = "rebuild"
    assert reconciler.interval_seconds() == 30
    assert reconciler.pod_missing_action() == "rebuild"
    settings.RECONCILE_POD_MISSING_ACTION = "something else"
    assert reconciler.pod_missing_action() == "error"
