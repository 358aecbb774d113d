"""Pages of the project itself: home, the Manage landing page, Manage > Users, password change.

Views are thin: check the role, validate with a form, call one service, render or redirect.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from coderadmin import lifecycle, services
from coderadmin.audit import audit_record
from coderadmin.forms import UserCreateForm, UserEditForm, add_service_errors
from coderadmin.roles import (
    Role,
    can_manage_user,
    is_site_admin,
    manage_required,
    stored_role,
)

User = get_user_model()
USERS_PER_PAGE = 50


@require_GET
@manage_required
def manage_index(request: HttpRequest) -> HttpResponse:
    return render(request, "manage/index.html")


@require_http_methods(["GET", "POST"])
@manage_required
def users(request: HttpRequest) -> HttpResponse:
    """The list of accounts, with the form that creates one."""
    form = UserCreateForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.user_create(
                actor=request.user,
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                role=Role(data["role"]),
                handle=data.get("handle", ""),
                is_staff=data.get("is_staff", False),
                request=request,
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"password": "password1"})
        else:
            messages.success(request, f"Created {user.username} (handle {user.handle}).")
            return redirect("manage-users")
    accounts = User.objects.prefetch_related("groups").order_by("username")
    page = Paginator(accounts, USERS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(account, stored_role(account)) for account in page]
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "manage/users.html",
        {"form": form, "page": page, "rows": rows, "manageable": _manageable_ids(request.user, page)},
        status=status,
    )


def _manageable_ids(actor: Any, page: Any) -> set[int]:
    if is_site_admin(actor):
        return {account.pk for account in page}
    return {account.pk for account in page if can_manage_user(actor, account)}


def _managed_user(request: HttpRequest, pk: int) -> Any:
    account = get_object_or_404(User, pk=pk)
    if not can_manage_user(request.user, account):
        raise PermissionDenied("You may not manage this account.")
    return account


@require_http_methods(["GET", "POST"])
@manage_required
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One account: details and role, password reset, deactivation."""
    account = _managed_user(request, pk)
    form = _edit_form(request, account, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                services.user_update(
                    actor=request.user,
                    user=account,
                    email=data["email"],
                    handle=data.get("handle"),
                    is_staff=data.get("is_staff"),
                    request=request,
                )
                services.user_set_role(
                    actor=request.user, user=account, role=Role(data["role"]), request=request
                )
        except ValidationError as exc:
            account.refresh_from_db()  # the transaction rolled back; drop the half-applied fields
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved {account.username}.")
            return redirect("manage-user", pk=account.pk)
    return _render_detail(
        request, account, form, SetPasswordForm(account), 400 if request.method == "POST" else 200
    )


def _render_detail(
    request: HttpRequest, account: Any, form: Form, password_form: Form, status: int
) -> HttpResponse:
    return render(
        request,
        "manage/user_detail.html",
        {
            "account": account,
            "account_role": stored_role(account),
            "form": form,
            "password_form": password_form,
        },
        status=status,
    )


def _edit_form(request: HttpRequest, account: Any, data: Any = None) -> UserEditForm:
    role = stored_role(account)
    return UserEditForm(
        data,
        initial={
            "email": account.email,
            "handle": account.handle,
            "is_staff": account.is_staff,
            "role": role.value if role else Role.MEMBER.value,
        },
        actor=request.user,
    )


@require_POST
@manage_required
def user_password(request: HttpRequest, pk: int) -> HttpResponse:
    account = _managed_user(request, pk)
    form = SetPasswordForm(account, request.POST)
    if form.is_valid():
        try:
            services.user_reset_password(
                actor=request.user, user=account, password=form.cleaned_data["new_password1"], request=request
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"password": "new_password1"})
        else:
            messages.success(request, f"Set a new password for {account.username}.")
            return redirect("manage-user", pk=account.pk)
    return _render_detail(request, account, _edit_form(request, account), form, 400)


@require_POST
@manage_required
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    account = _managed_user(request, pk)
    try:
        services.user_deactivate(actor=request.user, user=account, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Deactivated {account.username}; they can no longer sign in.")
    return redirect("manage-user", pk=account.pk)


@require_POST
@manage_required
def user_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    account = _managed_user(request, pk)
    services.user_reactivate(actor=request.user, user=account, request=request)
    messages.success(request, f"Reactivated {account.username}.")
    return redirect("manage-user", pk=account.pk)


@require_http_methods(["GET", "POST"])
@manage_required
def user_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete an account: a confirmation page (GET), then the deletion (POST) through
    ``lifecycle.user_delete``, which deletes the environments (cluster objects first) before the row."""
    account = _managed_user(request, pk)
    environments = account.environments.count()
    if request.method == "POST":
        try:
            remaining = lifecycle.user_delete(actor=request.user, user=account, request=request)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("manage-user", pk=account.pk)
        if remaining:
            messages.success(
                request,
                f"Deleting {account.username}: the account is removed once its {remaining} "
                "environment(s) are deleted; it can no longer sign in.",
            )
        else:
            messages.success(request, f"Deleted {account.username}.")
        return redirect("manage-users")
    return render(
        request,
        "manage/user_delete.html",
        {"account": account, "environments": environments, "is_self": account.pk == request.user.pk},
    )


class AuditedPasswordChangeView(PasswordChangeView):
    """Django's password change, recorded in the audit log."""

    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(
            "auth.password_change", actor=self.request.user, target=self.request.user, request=self.request
        )
        messages.success(self.request, "Your password was changed.")
        return response
