"""Data lifecycle: retention pruning, deactivation stopping environments, user deletion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models.signals import post_delete
from django.urls import reverse
from django.utils import timezone

from coderadmin import lifecycle, services
from coderadmin.models import AuditEntry
from coderadmin.roles import Role
from environments import services as environment_services
from environments.models import Environment, EnvironmentEvent
from environments.states import State
from tests.environments import cluster_support as cs
from tests.environments.factories import EnvironmentEventFactory, EnvironmentFactory
from tests.factories import member, site_admin, site_manager

User = get_user_model()


def _audit(action: str, days_ago: int) -> AuditEntry:
    entry = AuditEntry.objects.create(action=action, created_at=timezone.now() - timedelta(days=days_ago))
    return entry


@pytest.mark.django_db
def test_prune_removes_only_what_is_past_its_retention(settings):
    settings.EVENT_RETENTION_DAYS = 30
    settings.AUDIT_RETENTION_DAYS = 100
    old_event = EnvironmentEventFactory(time=timezone.now() - timedelta(days=31))
    new_event = EnvironmentEventFactory(time=timezone.now() - timedelta(days=29))
    old_entry, new_entry = _audit("x.old", 101), _audit("x.new", 99)

    assert lifecycle.prune() == {"events": 1, "audit_entries": 1}

    assert not EnvironmentEvent.objects.filter(pk=old_event.pk).exists()
    assert EnvironmentEvent.objects.filter(pk=new_event.pk).exists()
    assert not AuditEntry.objects.filter(pk=old_entry.pk).exists()
    assert AuditEntry.objects.filter(pk=new_entry.pk).exists()
    record = AuditEntry.objects.get(action="data.prune")
    assert record.after == {"events": 1, "audit_entries": 1}


@pytest.mark.django_db
def test_prune_works_in_batches(settings, monkeypatch):
    monkeypatch.setattr(lifecycle, "PRUNE_BATCH", 2)
    settings.EVENT_RETENTION_DAYS = 1
    EnvironmentEventFactory.create_batch(5, time=timezone.now() - timedelta(days=2))
    assert lifecycle.prune()["events"] == 5
    assert not EnvironmentEvent.objects.exists()


@pytest.mark.django_db
def test_zero_retention_keeps_everything_and_records_nothing(settings):
    settings.EVENT_RETENTION_DAYS = 0
    settings.AUDIT_RETENTION_DAYS = 0
    EnvironmentEventFactory(time=timezone.now() - timedelta(days=5000))
    _audit("x.ancient", 5000)
    assert lifecycle.prune() == {"events": 0, "audit_entries": 0}
    assert EnvironmentEvent.objects.count() == 1
    assert not AuditEntry.objects.filter(action="data.prune").exists()


@pytest.mark.django_db
def test_the_daily_task_prunes(settings):
    settings.AUDIT_RETENTION_DAYS = 1
    _audit("x.old", 2)
    lifecycle.prune_task.apply()
    assert not AuditEntry.objects.filter(action="x.old").exists()
    assert settings.CELERY_BEAT_SCHEDULE["coderadmin.prune"]["task"] == lifecycle.PRUNE_TASK


def test_retention_defaults(settings):
    assert (settings.EVENT_RETENTION_DAYS, settings.AUDIT_RETENTION_DAYS) == (90, 365)


@pytest.fixture
def admin(db):
    return site_admin(username="lc-admin")


@pytest.fixture
def owner(db):
    return member(username="lc-owner")


@pytest.mark.django_db
def test_deactivating_stops_and_cancels_the_users_environments(admin, owner):
    running = EnvironmentFactory(owner=owner, state=State.RUNNING, name="a")
    creating = EnvironmentFactory(owner=owner, state=State.CREATING, name="b")
    off = EnvironmentFactory(owner=owner, state=State.OFF, name="c")
    other = EnvironmentFactory(state=State.RUNNING, name="d")

    services.user_deactivate(actor=admin, user=owner)

    states = dict(Environment.objects.values_list("name", "state"))
    assert states == {"a": State.TURNING_OFF, "b": State.OFF, "c": State.OFF, "d": State.RUNNING}
    stops = AuditEntry.objects.filter(action__in=["environment.stop", "environment.cancel"])
    assert {(e.target_id, e.actor_id) for e in stops} == {
        (str(running.pk), admin.pk),
        (str(creating.pk), admin.pk),
    }
    assert off.pk and other.pk


@pytest.mark.django_db
def test_the_manage_page_deactivation_stops_environments(client, admin, owner):
    env = EnvironmentFactory(owner=owner, state=State.RUNNING)
    client.force_login(admin)
    client.post(reverse("manage-user-deactivate", args=[owner.pk]))
    env.refresh_from_db()
    assert env.state == State.TURNING_OFF


@pytest.mark.django_db
def test_deleting_a_user_without_environments_removes_the_account(admin, owner):
    assert lifecycle.user_delete(actor=admin, user=owner) == 0
    assert not User.objects.filter(pk=owner.pk).exists()
    actions = list(AuditEntry.objects.filter(target_id=str(owner.pk)).values_list("action", "actor_id"))
    assert ("user.delete_requested", admin.pk) in actions
    assert ("user.delete", None) in actions


@pytest.mark.django_db
def test_deleting_a_user_deletes_environments_first_then_the_account(
    admin, owner, django_capture_on_commit_callbacks
):
    envs = [EnvironmentFactory(owner=owner, state=state) for state in (State.RUNNING, State.OFF)]
    with django_capture_on_commit_callbacks() as enqueued:
        assert lifecycle.user_delete(actor=admin, user=owner) == 2
    assert len(enqueued) == 2  # one delete task per environment
    owner.refresh_from_db()
    assert not owner.is_active
    assert set(Environment.objects.values_list("state", flat=True)) == {State.DELETING}
    assert lifecycle.pending_deletions() == [owner.pk]

    for env in envs[:1]:
        env.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            environment_services.environment_finish_delete(env.pk, generation=env.generation)
    assert User.objects.filter(pk=owner.pk).exists()  # one environment is still being deleted

    last = Environment.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        environment_services.environment_finish_delete(last.pk, generation=last.generation)
    assert not User.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db
def test_reactivating_cancels_a_pending_deletion(admin, owner):
    env = EnvironmentFactory(owner=owner, state=State.OFF)
    lifecycle.user_delete(actor=admin, user=owner)
    services.user_reactivate(actor=admin, user=owner)
    assert lifecycle.pending_deletions() == []
    env.refresh_from_db()
    Environment.objects.filter(pk=env.pk).delete()
    assert lifecycle.finish_user_deletions() == 0
    assert User.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db
def test_the_daily_task_finishes_deletions_a_lost_signal_left(admin, owner):
    EnvironmentFactory(owner=owner, state=State.OFF)
    lifecycle.user_delete(actor=admin, user=owner)
    uid = "coderadmin.lifecycle.env_removed"
    post_delete.disconnect(sender=Environment, dispatch_uid=uid)  # as if the worker died right then
    try:
        Environment.objects.all().delete()
    finally:
        post_delete.connect(lifecycle._environment_removed, sender=Environment, dispatch_uid=uid)
    assert User.objects.filter(pk=owner.pk).exists()
    lifecycle.prune_task.apply()
    assert not User.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db
def test_who_may_delete_whom(admin, owner):
    with pytest.raises(PermissionDenied):
        lifecycle.user_delete(actor=owner, user=admin)
    manager = site_manager(username="lc-manager")
    with pytest.raises(PermissionDenied):
        lifecycle.user_delete(actor=manager, user=admin)
    with pytest.raises(ValidationError, match="your own"):
        lifecycle.user_delete(actor=admin, user=admin)
    assert User.objects.filter(pk=admin.pk, is_active=True).exists()
    lifecycle.user_delete(actor=manager, user=owner)
    assert not User.objects.filter(pk=owner.pk).exists()


@pytest.fixture
def demo(tmp_path):
    with cs.running_profile("demo", tmp_path, scale=0.002) as handle:
        yield handle


@pytest.fixture
def role_groups():
    """The role groups, which a transactional test's flush may have removed with the other rows."""
    for role in Role:
        Group.objects.get_or_create(name=role.value)


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_removes_their_cluster_objects_then_the_account(role_groups, demo, tmp_path):
    """With a real worker and the watcher: nothing of the user is left, in the cluster or the database."""
    admin = site_admin(username="lc-cluster-admin")
    owner = member(username="lc-cluster-owner")
    cs.configure()
    gateway = cs.gw.Gateway(demo.api_client)
    with cs.sqlite_waits_for_locks(), cs.celery_worker(), cs.running_watcher(tmp=tmp_path):
        env = cs.create(owner, cs.image("ghcr.io/coderadmin/example-plain"), name="doomed")
        cs.wait_state(env, State.RUNNING)
        lifecycle.user_delete(actor=admin, user=owner)
        cs.eventually(lambda: not User.objects.filter(pk=owner.pk).exists(), what="account removed")
        cs.assert_no_leaks(gateway)
    assert cs.cluster_objects(gateway) == set()
