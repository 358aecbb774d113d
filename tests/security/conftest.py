"""Fixtures of the security suite: one user per kind of visitor and the objects the URLs point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from coderadmin.roles import Role
from environments.models import Environment, EnvironmentEvent, Image
from environments.states import State
from infrastructure import gateway as gw
from infrastructure.models import InfrastructureSettings, ReadinessReport
from tests.environments.factories import EnvironmentFactory, ImageTagFactory
from tests.factories import NO_ROLE, UserFactory

# Every kind of visitor of the authorisation matrix, in the order the tables list them.
VISITORS = ("anonymous", "member", "other", "auditor", "manager", "admin", "staff")
VISITOR_ROLES: dict[str, Role | str] = {
    "member": Role.MEMBER,
    "other": Role.MEMBER,
    "auditor": Role.AUDITOR,
    "manager": Role.SITE_MANAGER,
    "admin": Role.SITE_ADMIN,
    "staff": NO_ROLE,
}
# A fixed CSRF secret: clients enforce CSRF checks and send this value as cookie and form field.
CSRF_SECRET = "s" * 32


@dataclass
class World:
    """The users and objects every URL of the product can be pointed at."""

    users: dict[str, Any]
    environment: Environment
    image: Image
    report: ReadinessReport

    def client(self, visitor: str, *, csrf: bool = True) -> Client:
        """A client that enforces CSRF like a browser; with ``csrf`` it holds a valid token cookie."""
        client = Client(enforce_csrf_checks=True)
        if csrf:
            client.cookies["csrftoken"] = CSRF_SECRET
        if visitor != "anonymous":
            client.force_login(self.users[visitor])
        return client


@pytest.fixture(autouse=True)
def _fast_private_settings(settings, tmp_path):
    """A private cache (the login rate limiter counts there) and a fast password hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


def make_world() -> World:
    users = {
        visitor: UserFactory(username=f"v-{visitor}", role=role, is_staff=visitor == "staff")
        for visitor, role in VISITOR_ROLES.items()
    }
    users["superuser"] = UserFactory(username="v-root", is_superuser=True, is_staff=True, role=NO_ROLE)
    tag = ImageTagFactory(image__repository="registry.example.com/team/dev", tag="1.0")
    environment = EnvironmentFactory(
        owner=users["member"], image=tag.image, tag="1.0", name="web", state=State.RUNNING
    )
    EnvironmentEvent.objects.create(environment=environment, message="pulled the image")
    settings = InfrastructureSettings.load()
    report = ReadinessReport.objects.create(
        requested_by=users["admin"],
        state=ReadinessReport.State.DONE,
        status="pass",
        environments_namespace=settings.environments_namespace,
    )
    return World(users=users, environment=environment, image=tag.image, report=report)


@pytest.fixture
def world(db) -> World:
    return make_world()


@pytest.fixture
def namespace_cluster(simulated_cluster):
    """The namespace button talks to the cluster: point the gateway at a simulated one."""
    gw.reset_api_client(simulated_cluster.api_client)
    yield simulated_cluster
    gw.reset_api_client(None)
