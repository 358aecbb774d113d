"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

import importlib

import pytest
from django.apps import apps as django_apps

create_roles = importlib.import_module("coderadmin.migrations.0003_roles").create_roles

pytest_plugins = ["infrastructure.simulator.testing"]


@pytest.fixture(autouse=True)
def role_groups_after_flush(request):
    """Transactional tests flush the database at teardown, data migrations included; give the
    next transactional test the role groups the roles migration creates."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    create_roles(django_apps, None)
