"""Roles: who may do what. Every app asks these functions instead of checking groups itself.

A role is a Django group (created by migration ``0003_roles``) carrying permissions. A user has at
most one role; superusers always count as site admins. Staff status (Django admin access) is a
separate flag and grants no role.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class Role(str, Enum):  # noqa: UP042 (the agreed interface; str() stays "Role.X")
    """The four roles. The value is the name of the Django group."""

    SITE_ADMIN = "Site admin"
    SITE_MANAGER = "Site manager"
    MEMBER = "Member"
    AUDITOR = "Auditor"

    @property
    def label(self) -> str:
        return self.value


# Highest privilege first: if a user somehow sits in several role groups, the strongest wins.
ROLE_ORDER = (Role.SITE_ADMIN, Role.SITE_MANAGER, Role.AUDITOR, Role.MEMBER)

# Permission codenames (on coderadmin.User) each role's group holds; migration 0003 creates them
# and a test keeps this table and the database in step.
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.SITE_ADMIN: frozenset(
        {"manage_users", "manage_members", "manage_infrastructure", "view_all_environments", "view_audit_log"}
    ),
    Role.SITE_MANAGER: frozenset(
        {"manage_members", "manage_infrastructure", "view_all_environments", "view_audit_log"}
    ),
    Role.AUDITOR: frozenset({"view_all_environments", "view_audit_log"}),
    Role.MEMBER: frozenset(),
}

_CACHE_ATTR = "_coderadmin_role"


def user_role(user: Any) -> Role | None:
    """The user's role, or None for anonymous, inactive or role-less users. Cached on the object."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if hasattr(user, _CACHE_ATTR):
        return getattr(user, _CACHE_ATTR)
    role = stored_role(user)
    setattr(user, _CACHE_ATTR, role)
    return role


def stored_role(user: Any) -> Role | None:
    """The role as stored, also for inactive accounts (for which ``user_role`` says None)."""
    if user.is_superuser:
        return Role.SITE_ADMIN
    names = {group.name for group in user.groups.all()}
    return next((r for r in ROLE_ORDER if r.value in names), None)


def forget_role(user: Any) -> None:
    """Drop cached role and permissions after the user's groups changed."""
    for attr in (_CACHE_ATTR, "_perm_cache", "_group_perm_cache", "_user_perm_cache"):
        if hasattr(user, attr):
            delattr(user, attr)


def is_site_admin(user: Any) -> bool:
    return user_role(user) is Role.SITE_ADMIN


def can_manage_infrastructure(user: Any) -> bool:
    """Site admins and site managers change infrastructure settings."""
    return user_role(user) in (Role.SITE_ADMIN, Role.SITE_MANAGER)


def can_view_all_environments(user: Any) -> bool:
    """Admins, managers and (read-only) auditors see every user's environments."""
    return user_role(user) in (Role.SITE_ADMIN, Role.SITE_MANAGER, Role.AUDITOR)


def can_manage(user: Any) -> bool:
    """May open the Manage section."""
    return can_manage_infrastructure(user)


def can_manage_user(actor: Any, target: Any) -> bool:
    """Admins manage everyone; managers only plain members (never staff or higher roles)."""
    role = user_role(actor)
    if role is Role.SITE_ADMIN:
        return True
    if role is Role.SITE_MANAGER:
        return (
            not target.is_superuser
            and not target.is_staff
            and not target.groups.exclude(name=Role.MEMBER.value)
            .filter(name__in=[r.value for r in Role])
            .exists()
        )
    return False


def assignable_roles(actor: Any) -> list[Role]:
    """Roles the actor may give to someone."""
    role = user_role(actor)
    if role is Role.SITE_ADMIN:
        return list(ROLE_ORDER)
    if role is Role.SITE_MANAGER:
        return [Role.MEMBER]
    return []


View = Callable[..., HttpResponse]


def role_required(*roles: Role) -> Callable[[View], View]:
    """Allow only users holding one of ``roles``: anonymous users go to login, others get 403."""
    allowed = frozenset(roles)

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if user_role(request.user) not in allowed:
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


manage_required = role_required(Role.SITE_ADMIN, Role.SITE_MANAGER)
manage_required.__doc__ = "Site admins and site managers only (the Manage section)."
