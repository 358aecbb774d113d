"""The roles API other apps code against, and the groups the migration creates."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from coderadmin.roles import (
    ROLE_PERMISSIONS,
    Role,
    can_manage_infrastructure,
    can_view_all_environments,
    is_site_admin,
    manage_required,
    role_required,
    user_role,
)
from tests.factories import NO_ROLE, UserFactory

pytestmark = pytest.mark.django_db


def test_role_values_are_the_group_names():
    assert [r.value for r in Role] == ["Site admin", "Site manager", "Member", "Auditor"]
    assert isinstance(Role.MEMBER, str)


def test_migration_creates_each_group_with_its_permissions():
    for role, codenames in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role.value)
        assert set(group.permissions.values_list("codename", flat=True)) == set(codenames)
        assert all(p.content_type.app_label == "coderadmin" for p in group.permissions.all())


def test_group_permissions_reach_the_user():
    manager = UserFactory(role=Role.SITE_MANAGER)
    assert manager.has_perm("coderadmin.manage_infrastructure")
    assert not manager.has_perm("coderadmin.manage_users")
    assert not UserFactory(role=Role.MEMBER).has_perm("coderadmin.view_all_environments")


@pytest.mark.parametrize(
    ("role", "infra", "view_all", "admin"),
    [
        (Role.SITE_ADMIN, True, True, True),
        (Role.SITE_MANAGER, True, True, False),
        (Role.AUDITOR, False, True, False),
        (Role.MEMBER, False, False, False),
    ],
)
def test_capabilities_per_role(role, infra, view_all, admin):
    user = UserFactory(role=role)
    assert user_role(user) is role
    assert can_manage_infrastructure(user) is infra
    assert can_view_all_environments(user) is view_all
    assert is_site_admin(user) is admin


def test_superuser_is_site_admin_without_group():
    root = UserFactory(is_superuser=True, role=NO_ROLE)
    assert user_role(root) is Role.SITE_ADMIN
    assert can_manage_infrastructure(root)


def test_no_role_for_anonymous_inactive_or_groupless_users():
    assert user_role(None) is None
    assert user_role(AnonymousUser()) is None
    assert user_role(UserFactory(role=NO_ROLE)) is None
    assert user_role(UserFactory(role=Role.SITE_ADMIN, is_active=False)) is None
    assert not can_manage_infrastructure(AnonymousUser())
    assert not can_view_all_environments(None)


def test_strongest_role_wins_when_several_groups():
    user = UserFactory(role=Role.MEMBER)
    user.groups.add(Group.objects.get(name=Role.SITE_MANAGER.value))
    assert user_role(user) is Role.SITE_MANAGER


def test_staff_status_grants_no_role():
    assert user_role(UserFactory(role=NO_ROLE, is_staff=True)) is None


def _view(request):
    return HttpResponse("ok")


def _request(user):
    request = RequestFactory().get("/somewhere/?x=1")
    request.user = user
    return request


def test_role_required_lets_listed_roles_in():
    view = role_required(Role.AUDITOR, Role.SITE_ADMIN)(_view)
    assert view(_request(UserFactory(role=Role.AUDITOR))).status_code == 200
    with pytest.raises(PermissionDenied):
        view(_request(UserFactory(role=Role.SITE_MANAGER)))


def test_manage_required_redirects_anonymous_and_refuses_members():
    view = manage_required(_view)
    response = view(_request(AnonymousUser()))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/somewhere/%3Fx%3D1"
    with pytest.raises(PermissionDenied):
        view(_request(UserFactory(role=Role.MEMBER)))
    with pytest.raises(PermissionDenied):
        view(_request(UserFactory(role=Role.AUDITOR)))
    assert view(_request(UserFactory(role=Role.SITE_MANAGER))).status_code == 200
    assert view(_request(UserFactory(role=Role.SITE_ADMIN))).status_code == 200
