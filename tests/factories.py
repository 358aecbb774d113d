"""Shared factory_boy factories. Users get a role through ``role=`` (a Role, or NO_ROLE for none)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from coderadmin.roles import Role

PASSWORD = "correct-horse-battery-42"
NO_ROLE = "no-role"


class UserFactory(factory.django.DjangoModelFactory):
    """An active account with the Member role unless ``role`` says otherwise."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(obj, create: bool, extracted: Role | str | None, **kwargs: object) -> None:
        chosen = Role.MEMBER if extracted is None else extracted
        if create and chosen != NO_ROLE:
            obj.groups.add(Group.objects.get(name=Role(chosen).value))


def site_admin(**kwargs: object) -> object:
    return UserFactory(role=Role.SITE_ADMIN, **kwargs)


def site_manager(**kwargs: object) -> object:
    return UserFactory(role=Role.SITE_MANAGER, **kwargs)


def auditor(**kwargs: object) -> object:
    return UserFactory(role=Role.AUDITOR, **kwargs)


def member(**kwargs: object) -> object:
    return UserFactory(role=Role.MEMBER, **kwargs)
