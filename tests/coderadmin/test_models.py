"""User handles: derived from the login name, always a valid DNS label without ``--``."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from coderadmin.models import HANDLE_MAX_LENGTH, User, derive_handle
from coderadmin.slugs import is_safe_slug


@pytest.mark.parametrize(("username", "handle"), [("alice", "alice"), ("bob-2", "bob-2")])
def test_valid_usernames_are_their_own_handle(username, handle):
    assert derive_handle(username) == handle


@given(st.text(min_size=1, max_size=150))
def test_derived_handles_are_always_valid(username):
    handle = derive_handle(username)
    assert is_safe_slug(handle, HANDLE_MAX_LENGTH)
    assert "--" not in handle


def test_different_usernames_get_different_handles():
    assert derive_handle("Bob") != derive_handle("bob")
    assert derive_handle("a.b") != derive_handle("a_b")


@pytest.mark.django_db
def test_handle_is_filled_on_save_and_validated():
    user = User.objects.create_user(username="Mary.Jane", password="x")
    assert user.handle == derive_handle("Mary.Jane")
    user.handle = "mary--jane"
    with pytest.raises(ValidationError, match="two hyphens"):
        user.full_clean()
