"""Manage > Users through the test client, as admins and managers use it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from coderadmin.models import AuditEntry
from coderadmin.roles import Role, stored_role
from environments.models import Environment
from environments.states import State
from tests.environments.factories import EnvironmentFactory
from tests.factories import member, site_admin

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "a-Fine-passphrase-77"


def _create(client, **fields):
    data = {"username": "newbie", "email": "n@example.com", "role": "Member", "password1": GOOD_PASSWORD}
    data["password2"] = data["password1"]
    data.update(fields)
    return client.post("/manage/users/", data)


def test_users_page_lists_accounts_with_role_and_handle(admin_client, member_user):
    body = admin_client.get("/manage/users/").content.decode()
    assert "mia" in body and "<code>mia</code>" in body
    assert "Member" in body and "Site admin" in body


def test_admin_creates_a_user_from_the_form(admin_client, admin_user):
    response = _create(admin_client, role="Site manager", handle="nb", is_staff="on")
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert (user.handle, user.is_staff, stored_role(user)) == ("nb", True, Role.SITE_MANAGER)
    assert AuditEntry.objects.get(action="user.create").actor == admin_user
    assert "Created newbie" in admin_client.get("/manage/users/").content.decode()


def test_create_form_shows_errors_and_creates_nothing(admin_client):
    response = _create(admin_client, password2="something-else-99")
    assert response.status_code == 400
    assert "The two passwords differ." in response.content.decode()
    response = _create(admin_client, handle="a--b")
    assert response.status_code == 400
    assert "two hyphens" in response.content.decode()
    response = _create(admin_client, password1="short", password2="short")
    assert response.status_code == 400
    assert "too short" in response.content.decode()
    assert not User.objects.filter(username="newbie").exists()


def test_manager_form_offers_member_only_and_no_handle(manager_client):
    body = manager_client.get("/manage/users/").content.decode()
    assert '<option value="Member"' in body
    assert '<option value="Site admin"' not in body
    assert 'name="handle"' not in body
    response = _create(manager_client, role="Site admin")
    assert response.status_code == 400
    assert not User.objects.filter(username="newbie").exists()
    assert _create(manager_client).status_code == 302
    assert stored_role(User.objects.get(username="newbie")) is Role.MEMBER


def test_manager_sees_admins_but_cannot_open_them(manager_client):
    admin = site_admin(username="boss")
    body = manager_client.get("/manage/users/").content.decode()
    assert "boss" in body
    assert f'href="/manage/users/{admin.pk}/"' not in body
    assert manager_client.get(f"/manage/users/{admin.pk}/").status_code == 403
    assert manager_client.post(f"/manage/users/{admin.pk}/deactivate/").status_code == 403
    admin.refresh_from_db()
    assert admin.is_active


def test_admin_changes_role_handle_and_staff(admin_client, member_user):
    response = admin_client.post(
        f"/manage/users/{member_user.pk}/",
        {"email": "mia@example.org", "role": "Auditor", "handle": "mia2", "is_staff": "on"},
    )
    assert response.status_code == 302
    member_user.refresh_from_db()
    assert (member_user.email, member_user.handle, member_user.is_staff) == ("mia@example.org", "mia2", True)
    assert stored_role(member_user) is Role.AUDITOR
    changes = AuditEntry.objects.filter(action__startswith="user.")
    assert set(changes.values_list("action", flat=True)) == {"user.update", "user.role_change"}


def test_edit_that_fails_changes_nothing(admin_client, admin_user):
    member(username="taken")
    target = member(username="tom")
    response = admin_client.post(
        f"/manage/users/{target.pk}/", {"email": "", "role": "Member", "handle": "taken"}
    )
    assert response.status_code == 400
    assert "already taken" in response.content.decode()
    # the last admin demoting themselves: the email change in the same form is rolled back too
    response = admin_client.post(
        f"/manage/users/{admin_user.pk}/", {"email": "x@example.com", "role": "Member", "handle": "ada"}
    )
    assert response.status_code == 400
    assert "last active site admin" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.email == "ada@example.com"
    assert not AuditEntry.objects.filter(action__startswith="user.").exists()


def test_reset_password_form(admin_client, member_user):
    url = f"/manage/users/{member_user.pk}/password/"
    response = admin_client.post(url, {"new_password1": GOOD_PASSWORD, "new_password2": "different-one-88"})
    assert response.status_code == 400
    response = admin_client.post(url, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD})
    assert response.status_code == 302
    member_user.refresh_from_db()
    assert member_user.check_password(GOOD_PASSWORD)
    assert admin_client.get(url).status_code == 405


def test_deactivated_user_is_signed_out_and_cannot_sign_in(admin_client, member_user, client):
    client.force_login(member_user)
    assert client.get("/").status_code == 200
    assert admin_client.post(f"/manage/users/{member_user.pk}/deactivate/").status_code == 302
    assert client.get("/").status_code == 302
    response = client.post("/accounts/login/", {"username": "mia", "password": "correct-horse-battery-42"})
    assert response.status_code == 200
    assert "do not match an active account" in response.content.decode()
    body = admin_client.get(f"/manage/users/{member_user.pk}/").content.decode()
    assert "Deactivated" in body and "Reactivate account" in body
    admin_client.post(f"/manage/users/{member_user.pk}/reactivate/")
    member_user.refresh_from_db()
    assert member_user.is_active


def test_deactivating_yourself_shows_an_error(admin_client, admin_user):
    site_admin(username="another")
    response = admin_client.post(f"/manage/users/{admin_user.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account." in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_unknown_user_is_404(admin_client):
    assert admin_client.get("/manage/users/999999/").status_code == 404


def test_users_page_paginates(admin_client, settings):
    for i in range(55):
        member(username=f"bulk{i:02d}")
    first = admin_client.get("/manage/users/").content.decode()
    assert "Page 1 of 2" in first
    assert "bulk54" not in first
    assert "bulk54" in admin_client.get("/manage/users/?page=2").content.decode()


def test_deleting_an_account_asks_for_confirmation_then_deletes_it(admin_client, admin_user, member_user):
    detail = admin_client.get(f"/manage/users/{member_user.pk}/").content.decode()
    assert f'href="/manage/users/{member_user.pk}/delete/"' in detail
    confirm = admin_client.get(f"/manage/users/{member_user.pk}/delete/")
    assert confirm.status_code == 200
    assert f'<form method="post" action="/manage/users/{member_user.pk}/delete/">' in confirm.content.decode()
    assert User.objects.filter(pk=member_user.pk).exists()  # the GET changed nothing

    response = admin_client.post(f"/manage/users/{member_user.pk}/delete/")

    assert response.status_code == 302 and response.url == "/manage/users/"
    assert not User.objects.filter(pk=member_user.pk).exists()
    actions = set(AuditEntry.objects.filter(target_id=str(member_user.pk)).values_list("action", flat=True))
    assert {"user.delete_requested", "user.delete"} <= actions
    assert AuditEntry.objects.get(action="user.delete_requested").actor == admin_user
    assert f"Deleted {member_user.username}" in admin_client.get("/manage/users/").content.decode()


def test_deleting_an_account_with_environments_deletes_them_first(admin_client, member_user):
    envs = [EnvironmentFactory(owner=member_user, state=State.OFF, name=name) for name in ("a", "b")]
    confirm = admin_client.get(f"/manage/users/{member_user.pk}/delete/").content.decode()
    assert "its 2 environments" in confirm

    response = admin_client.post(f"/manage/users/{member_user.pk}/delete/", follow=True)

    member_user.refresh_from_db()
    assert not member_user.is_active
    assert set(Environment.objects.filter(pk__in=[e.pk for e in envs]).values_list("state", flat=True)) == {
        State.DELETING
    }
    assert "once its 2 environment(s) are deleted" in response.content.decode()


def test_a_manager_deletes_members_but_not_admins(manager_client, member_user, admin_user):
    assert manager_client.post(f"/manage/users/{admin_user.pk}/delete/").status_code == 403
    assert User.objects.filter(pk=admin_user.pk, is_active=True).exists()
    assert manager_client.post(f"/manage/users/{member_user.pk}/delete/").status_code == 302
    assert not User.objects.filter(pk=member_user.pk).exists()


def test_you_cannot_delete_your_own_account(admin_client, admin_user):
    assert "/delete/" not in admin_client.get(f"/manage/users/{admin_user.pk}/").content.decode()
    assert (
        "cannot delete your own"
        in admin_client.get(f"/manage/users/{admin_user.pk}/delete/").content.decode()
    )
    response = admin_client.post(f"/manage/users/{admin_user.pk}/delete/", follow=True)
    assert "You cannot delete your own account." in response.content.decode()
    assert User.objects.filter(pk=admin_user.pk, is_active=True).exists()
    assert not AuditEntry.objects.filter(action="user.delete_requested").exists()
