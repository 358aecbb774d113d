"""User management: the only code that creates or changes accounts and roles.

Each function checks that ``actor`` may do it (PermissionDenied otherwise), refuses bad input
with a ValidationError that changes nothing, and records an audit entry.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from coderadmin.audit import audit_record
from coderadmin.models import HANDLE_MAX_LENGTH, derive_handle
from coderadmin.roles import Role, assignable_roles, can_manage_user, forget_role, is_site_admin, stored_role

User = get_user_model()


def _snapshot(user: Any) -> dict[str, Any]:
    role = stored_role(user)
    return {
        "username": user.username,
        "email": user.email,
        "handle": user.handle,
        "role": role.value if role else None,
        "is_staff": user.is_staff,
        "is_active": user.is_active,
    }


def _require_manage(actor: Any, user: Any) -> None:
    if not can_manage_user(actor, user):
        raise PermissionDenied("You may not manage this account.")


def _require_assignable(actor: Any, role: Role) -> None:
    if role not in assignable_roles(actor):
        raise PermissionDenied(f"You may not give the role {role.value}.")


def _other_active_admins(user: Any) -> bool:
    admins = User.objects.filter(Q(is_superuser=True) | Q(groups__name=Role.SITE_ADMIN.value), is_active=True)
    return admins.exclude(pk=user.pk).exists()


def _check_handle(handle: str, user: Any = None) -> None:
    field = User._meta.get_field("handle")
    try:
        field.run_validators(handle)
    except ValidationError as exc:
        raise ValidationError({"handle": exc.messages}) from exc
    if len(handle) > HANDLE_MAX_LENGTH:
        raise ValidationError({"handle": f"Use at most {HANDLE_MAX_LENGTH} characters."})
    taken = User.objects.filter(handle=handle)
    if user is not None:
        taken = taken.exclude(pk=user.pk)
    if taken.exists():
        raise ValidationError({"handle": "This handle is already taken; choose another one."})


def _set_role_groups(user: Any, role: Role) -> None:
    user.groups.remove(*Group.objects.filter(name__in=[r.value for r in Role]))
    user.groups.add(Group.objects.get(name=role.value))
    forget_role(user)


def user_create(
    *,
    actor: Any,
    username: str,
    password: str,
    email: str = "",
    role: Role = Role.MEMBER,
    handle: str = "",
    is_staff: bool = False,
    request: HttpRequest | None = None,
) -> Any:
    """Create an active account with one role. The handle defaults to one derived from the username."""
    role = Role(role)
    _require_assignable(actor, role)
    if (handle or is_staff) and not is_site_admin(actor):
        raise PermissionDenied("Only site admins choose handles or grant staff status.")
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with that username already exists."})
    handle = handle or derive_handle(username)
    _check_handle(handle)
    user = User(username=username, email=email, handle=handle, is_staff=is_staff)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    with transaction.atomic():
        user.save()
        _set_role_groups(user, role)
        audit_record("user.create", actor=actor, target=user, request=request, after=_snapshot(user))
    return user


def user_update(
    *,
    actor: Any,
    user: Any,
    email: str,
    handle: str | None = None,
    is_staff: bool | None = None,
    request: HttpRequest | None = None,
) -> Any:
    """Change contact details; handle and staff status only by site admins (None leaves them)."""
    _require_manage(actor, user)
    admin_only = (handle is not None and handle != user.handle) or (
        is_staff is not None and is_staff != user.is_staff
    )
    if admin_only and not is_site_admin(actor):
        raise PermissionDenied("Only site admins change handles or staff status.")
    if handle is not None and handle != user.handle:
        _check_handle(handle, user)
    before = _snapshot(user)
    user.email = email
    if handle is not None:
        user.handle = handle
    if is_staff is not None:
        user.is_staff = is_staff
    after = _snapshot(user)
    if after == before:
        return user
    with transaction.atomic():
        user.save(update_fields=["email", "handle", "is_staff"])
        changed = {k for k in after if after[k] != before[k]}
        audit_record(
            "user.update",
            actor=actor,
            target=user,
            request=request,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return user


def user_set_role(*, actor: Any, user: Any, role: Role, request: HttpRequest | None = None) -> Any:
    """Give the user exactly this role, keeping at least one active site admin."""
    role = Role(role)
    _require_manage(actor, user)
    _require_assignable(actor, role)
    current = stored_role(user)
    if current is role:
        return user
    if user.is_superuser:
        raise ValidationError(
            "This account is a superuser and always a site admin; change that in Django admin."
        )
    if current is Role.SITE_ADMIN and user.is_active and not _other_active_admins(user):
        raise ValidationError("This is the last active site admin; make someone else site admin first.")
    with transaction.atomic():
        _set_role_groups(user, role)
        audit_record(
            "user.role_change",
            actor=actor,
            target=user,
            request=request,
            before={"role": current.value if current else None},
            after={"role": role.value},
        )
    return user


def user_reset_password(*, actor: Any, user: Any, password: str, request: HttpRequest | None = None) -> Any:
    """Set a new password chosen by the actor (the password itself is never recorded)."""
    _require_manage(actor, user)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        audit_record("user.password_reset", actor=actor, target=user, request=request)
    return user


def user_deactivate(*, actor: Any, user: Any, request: HttpRequest | None = None) -> Any:
    """Block sign-in and stop the user's environments (the account, its volumes and its history
    stay). Never yourself, never the last site admin."""
    from coderadmin.lifecycle import stop_environments

    _require_manage(actor, user)
    if user.pk == actor.pk:
        raise ValidationError("You cannot deactivate your own account.")
    if not user.is_active:
        return user
    if stored_role(user) is Role.SITE_ADMIN and not _other_active_admins(user):
        raise ValidationError("This is the last active site admin; make someone else site admin first.")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(
            "user.deactivate",
            actor=actor,
            target=user,
            request=request,
            before={"is_active": True},
            after={"is_active": False},
        )
    stop_environments(actor=actor, user=user, request=request)
    return user


def user_reactivate(*, actor: Any, user: Any, request: HttpRequest | None = None) -> Any:
    _require_manage(actor, user)
    if user.is_active:
        return user
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(
            "user.reactivate",
            actor=actor,
            target=user,
            request=request,
            before={"is_active": False},
            after={"is_active": True},
        )
    return user
