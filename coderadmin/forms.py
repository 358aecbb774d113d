"""Forms for the Manage > Users pages. They check shape; services check permission and rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from coderadmin.models import HANDLE_MAX_LENGTH
from coderadmin.roles import Role, assignable_roles, is_site_admin


def _role_choices(actor: Any) -> list[tuple[str, str]]:
    return [(role.value, role.value) for role in assignable_roles(actor)]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False)
    role = forms.ChoiceField()
    handle = forms.CharField(
        max_length=HANDLE_MAX_LENGTH,
        required=False,
        help_text="Leave empty to derive it from the username.",
    )
    is_staff = forms.BooleanField(required=False, label="Staff (may open Django admin)")
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput)

    def __init__(self, *args: Any, actor: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(actor)
        self.fields["role"].initial = Role.MEMBER.value
        if not is_site_admin(actor):
            del self.fields["handle"]
            del self.fields["is_staff"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class UserEditForm(forms.Form):
    email = forms.EmailField(required=False)
    role = forms.ChoiceField()
    handle = forms.CharField(
        max_length=HANDLE_MAX_LENGTH,
        help_text="Used in the names of this user's cluster objects; existing objects keep their names.",
    )
    is_staff = forms.BooleanField(required=False, label="Staff (may open Django admin)")

    def __init__(self, *args: Any, actor: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(actor)
        if not is_site_admin(actor):
            del self.fields["handle"]
            del self.fields["is_staff"]


def add_service_errors(form: forms.Form, exc: ValidationError, rename: dict[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: next to the matching field (``rename`` maps a
    service's field name to the form's), or above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        name = (rename or {}).get(field, field)
        form.add_error(name if name in form.fields else None, errors)
