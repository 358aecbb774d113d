"""Deleting users from the Django admin goes through lifecycle.user_delete, not a refused cascade."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from coderadmin.models import AuditEntry
from environments.models import Environment
from environments.states import State
from tests.environments.factories import EnvironmentFactory
from tests.factories import member

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def root(client):
    user = member(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_delete_page_lists_the_environments_instead_of_refusing(client, root):
    target = member(username="leaving")
    EnvironmentFactory(owner=target, state=State.RUNNING, name="box")
    page = client.get(f"/admin/coderadmin/user/{target.pk}/delete/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "leaving/box" in body
    assert page.context["protected"] == []


def test_deleting_from_the_admin_deletes_the_environments_first(client, root):
    target = member(username="leaving")
    env = EnvironmentFactory(owner=target, state=State.OFF, name="box")

    response = client.post(f"/admin/coderadmin/user/{target.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    target.refresh_from_db()
    env.refresh_from_db()
    assert (target.is_active, env.state) == (False, State.DELETING)
    entry = AuditEntry.objects.get(action="user.delete_requested")
    assert (entry.actor, entry.target_id) == (root, str(target.pk))
    assert "removed once its 1 environment(s) are deleted" in response.content.decode()


def test_a_user_without_environments_is_removed_at_once(client, root):
    target = member(username="leaving")
    assert client.post(f"/admin/coderadmin/user/{target.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=target.pk).exists()
    assert AuditEntry.objects.filter(action="user.delete", target_id=str(target.pk)).exists()


def test_you_cannot_delete_yourself_from_the_admin(client, root):
    assert client.get(f"/admin/coderadmin/user/{root.pk}/delete/").status_code == 403
    assert client.post(f"/admin/coderadmin/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=root.pk, is_active=True).exists()


def test_the_bulk_delete_action_deletes_through_the_lifecycle(client, root):
    others = [member(username=name) for name in ("one", "two")]
    EnvironmentFactory(owner=others[0], state=State.OFF, name="box")
    data = {"action": "delete_selected", "_selected_action": [u.pk for u in others], "post": "yes"}

    assert client.post("/admin/coderadmin/user/", data).status_code == 302

    assert not User.objects.filter(pk=others[1].pk).exists()
    assert User.objects.get(pk=others[0].pk).is_active is False
    assert Environment.objects.get(owner=others[0]).state == State.DELETING
    assert AuditEntry.objects.filter(action="user.delete_requested").count() == 2


def test_a_bulk_delete_that_includes_yourself_is_refused_whole(client, root):
    other = member(username="one")
    data = {"action": "delete_selected", "_selected_action": [root.pk, other.pk], "post": "yes"}

    assert client.post("/admin/coderadmin/user/", data).status_code == 403

    assert User.objects.filter(pk__in=[root.pk, other.pk], is_active=True).count() == 2
