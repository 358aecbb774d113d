"""Fixtures for the project's own tests: one client per kind of visitor, and a private cache."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory, auditor, member, site_admin, site_manager


@pytest.fixture(autouse=True)
def _fast_private_settings(settings, tmp_path):
    """Each test gets an empty cache of its own (the rate limiter keeps its counters there), and a
    fast password hasher (the production one is slow on purpose)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": str(tmp_path),
        }
    }


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(db):
    return site_admin(username="ada")


@pytest.fixture
def manager_user(db):
    return site_manager(username="max")


@pytest.fixture
def member_user(db):
    return member(username="mia")


@pytest.fixture
def auditor_user(db):
    return auditor(username="aud")


@pytest.fixture
def staff_member(db):
    return member(username="stan", is_staff=True)


@pytest.fixture
def admin_client(admin_user) -> Client:
    return _client_for(admin_user)


@pytest.fixture
def manager_client(manager_user) -> Client:
    return _client_for(manager_user)


@pytest.fixture
def member_client(member_user) -> Client:
    return _client_for(member_user)


@pytest.fixture
def clients(db) -> dict[str, Client]:
    """A client for every kind of visitor, keyed by kind."""
    result = {"anonymous": Client()}
    for kind, user in {
        "member": member(username="k-member"),
        "auditor": auditor(username="k-auditor"),
        "manager": site_manager(username="k-manager"),
        "admin": site_admin(username="k-admin"),
        "staff": member(username="k-staff", is_staff=True),
        "superuser": UserFactory(username="k-root", is_superuser=True, is_staff=True, role="no-role"),
    }.items():
        result[kind] = _client_for(user)
    return result
