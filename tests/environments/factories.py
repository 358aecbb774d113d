"""factory_boy factories for images, tags and environments (users are made directly)."""

from __future__ import annotations

import factory
from django.conf import settings
from django.contrib.auth import get_user_model

from environments.models import Environment, EnvironmentEvent, Image, ImageTag
from environments.states import State


def make_user(username: str = "alice", **extra) -> object:
    """A user made with the user model itself (the shared user factory belongs to another area)."""
    return get_user_model().objects.create_user(username=username, password="pw-not-used-1234", **extra)


class OwnerFactory(factory.django.DjangoModelFactory):
    """A plain member owning environments; the handle is derived from the username on save."""

    class Meta:
        model = settings.AUTH_USER_MODEL

    username = factory.Sequence(lambda n: f"owner{n}")


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    repository = factory.Sequence(lambda n: f"registry.example.com/team/dev{n}")
    description = "A development image"
    username = "coder"


class ImageTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageTag

    image = factory.SubFactory(ImageFactory)
    tag = "1.0"
    is_default = True


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    owner = factory.SubFactory(OwnerFactory)
    name = factory.Sequence(lambda n: f"env{n}")
    image = factory.SubFactory(ImageFactory)
    tag = "1.0"
    cpu_millicores = 2000
    memory_mib = 4096
    disk_gib = 20
    gpu_count = 0
    cvm = False
    state = State.CREATING


class EnvironmentEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnvironmentEvent

    environment = factory.SubFactory(EnvironmentFactory)
    message = "pulling image"
