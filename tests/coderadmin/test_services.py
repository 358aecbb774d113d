"""User management services: permissions, validation and the audit trail of each change."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError

from coderadmin import services
from coderadmin.models import AuditEntry
from coderadmin.roles import Role, stored_role, user_role
from tests.factories import UserFactory, auditor, member, site_admin, site_manager

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "a-Fine-passphrase-77"


def test_admin_creates_user_with_role_and_derived_handle(admin_user):
    user = services.user_create(
        actor=admin_user,
        username="Bob.Smith",
        email="bob@example.com",
        password=GOOD_PASSWORD,
        role=Role.AUDITOR,
    )
    assert user_role(user) is Role.AUDITOR
    assert user.check_password(GOOD_PASSWORD)
    assert user.handle.startswith("bob-smith-") and "--" not in user.handle
    entry = AuditEntry.objects.get(action="user.create")
    assert entry.actor == admin_user
    assert entry.target_id == str(user.pk)
    assert entry.after["role"] == "Auditor"
    assert "password" not in str(entry.after).lower()


def test_valid_username_is_its_own_handle(admin_user):
    user = services.user_create(actor=admin_user, username="carol", password=GOOD_PASSWORD)
    assert user.handle == "carol"
    assert user_role(user) is Role.MEMBER


def test_admin_may_choose_handle_and_staff(admin_user):
    user = services.user_create(
        actor=admin_user, username="dave", password=GOOD_PASSWORD, handle="dv", is_staff=True
    )
    assert (user.handle, user.is_staff) == ("dv", True)


@pytest.mark.parametrize("handle", ["Bad", "a--b", "-a", "a_b", "x" * 33])
def test_invalid_handles_are_refused_and_nothing_is_created(admin_user, handle):
    with pytest.raises(ValidationError) as info:
        services.user_create(actor=admin_user, username="erin", password=GOOD_PASSWORD, handle=handle)
    assert "handle" in info.value.error_dict
    assert not User.objects.filter(username="erin").exists()


def test_taken_handle_is_refused(admin_user):
    member(username="frank")
    with pytest.raises(ValidationError, match="already taken"):
        services.user_create(actor=admin_user, username="frank2", password=GOOD_PASSWORD, handle="frank")


def test_duplicate_username_is_refused_case_insensitively(admin_user):
    member(username="gina")
    with pytest.raises(ValidationError, match="already exists"):
        services.user_create(actor=admin_user, username="GINA", password=GOOD_PASSWORD)


def test_weak_password_is_refused(admin_user):
    with pytest.raises(ValidationError) as info:
        services.user_create(actor=admin_user, username="hank", password="123")
    assert "password" in info.value.error_dict
    assert not User.objects.filter(username="hank").exists()


def test_manager_creates_members_only(manager_user):
    user = services.user_create(actor=manager_user, username="ivy", password=GOOD_PASSWORD)
    assert user_role(user) is Role.MEMBER
    for role in (Role.SITE_ADMIN, Role.SITE_MANAGER, Role.AUDITOR):
        with pytest.raises(PermissionDenied):
            services.user_create(
                actor=manager_user, username=f"x{role.name.lower()}", password=GOOD_PASSWORD, role=role
            )
    with pytest.raises(PermissionDenied):
        services.user_create(actor=manager_user, username="jack", password=GOOD_PASSWORD, is_staff=True)
    with pytest.raises(PermissionDenied):
        services.user_create(actor=manager_user, username="jill", password=GOOD_PASSWORD, handle="jj")


def test_members_and_auditors_manage_nobody(member_user, auditor_user):
    target = member(username="kim")
    for actor in (member_user, auditor_user):
        with pytest.raises(PermissionDenied):
            services.user_create(actor=actor, username="new", password=GOOD_PASSWORD)
        with pytest.raises(PermissionDenied):
            services.user_deactivate(actor=actor, user=target)
        with pytest.raises(PermissionDenied):
            services.user_reset_password(actor=actor, user=target, password=GOOD_PASSWORD)


def test_set_role_moves_user_to_exactly_one_role_group(admin_user):
    user = member(username="leo")
    services.user_set_role(actor=admin_user, user=user, role=Role.SITE_MANAGER)
    user.refresh_from_db()
    assert [g.name for g in user.groups.all()] == ["Site manager"]
    entry = AuditEntry.objects.get(action="user.role_change")
    assert (entry.before, entry.after) == ({"role": "Member"}, {"role": "Site manager"})


def test_manager_cannot_touch_admins_managers_auditors_or_staff(manager_user):
    for target in (
        site_admin(username="t1"),
        site_manager(username="t2"),
        auditor(username="t3"),
        member(username="t4", is_staff=True),
        UserFactory(username="t5", is_superuser=True, role="no-role"),
    ):
        with pytest.raises(PermissionDenied):
            services.user_set_role(actor=manager_user, user=target, role=Role.MEMBER)
        with pytest.raises(PermissionDenied):
            services.user_reset_password(actor=manager_user, user=target, password=GOOD_PASSWORD)
        with pytest.raises(PermissionDenied):
            services.user_deactivate(actor=manager_user, user=target)


def test_manager_cannot_promote_a_member(manager_user):
    with pytest.raises(PermissionDenied):
        services.user_set_role(actor=manager_user, user=member(username="mo"), role=Role.SITE_MANAGER)


def test_last_active_site_admin_cannot_be_demoted_or_deactivated(admin_user):
    with pytest.raises(ValidationError, match="last active site admin"):
        services.user_set_role(actor=admin_user, user=admin_user, role=Role.MEMBER)
    other = site_admin(username="other-admin")
    services.user_deactivate(actor=other, user=admin_user)
    with pytest.raises(ValidationError, match="last active site admin"):
        services.user_set_role(actor=other, user=other, role=Role.MEMBER)


def test_superuser_role_is_not_changed_through_groups(admin_user):
    root = UserFactory(username="root", is_superuser=True, role="no-role")
    with pytest.raises(ValidationError, match="superuser"):
        services.user_set_role(actor=admin_user, user=root, role=Role.MEMBER)


def test_reset_password_sets_it_and_records_no_secret(admin_user):
    user = member(username="nina")
    services.user_reset_password(actor=admin_user, user=user, password=GOOD_PASSWORD)
    user.refresh_from_db()
    assert user.check_password(GOOD_PASSWORD)
    entry = AuditEntry.objects.get(action="user.password_reset")
    assert entry.before == {} and entry.after == {}
    with pytest.raises(ValidationError):
        services.user_reset_password(actor=admin_user, user=user, password="nina")


def test_deactivate_and_reactivate(manager_user):
    user = member(username="olga")
    services.user_deactivate(actor=manager_user, user=user)
    user.refresh_from_db()
    assert not user.is_active
    assert user_role(user) is None and stored_role(user) is Role.MEMBER
    services.user_reactivate(actor=manager_user, user=user)
    user.refresh_from_db()
    assert user.is_active
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "user.deactivate",
        "user.reactivate",
    ]


def test_nobody_deactivates_themselves(admin_user):
    site_admin(username="second")
    with pytest.raises(ValidationError, match="your own account"):
        services.user_deactivate(actor=admin_user, user=admin_user)


def test_update_records_only_changed_fields(admin_user):
    user = member(username="pete")
    services.user_update(actor=admin_user, user=user, email="new@example.com", handle="peter", is_staff=True)
    entry = AuditEntry.objects.get(action="user.update")
    assert entry.before == {"email": "pete@example.com", "handle": "pete", "is_staff": False}
    assert entry.after == {"email": "new@example.com", "handle": "peter", "is_staff": True}
    services.user_update(actor=admin_user, user=user, email="new@example.com", handle="peter", is_staff=True)
    assert AuditEntry.objects.filter(action="user.update").count() == 1


def test_manager_may_change_member_email_but_not_handle(manager_user):
    user = member(username="quinn")
    services.user_update(actor=manager_user, user=user, email="q@example.com")
    user.refresh_from_db()
    assert user.email == "q@example.com"
    with pytest.raises(PermissionDenied):
        services.user_update(actor=manager_user, user=user, email="q@example.com", handle="qq")
