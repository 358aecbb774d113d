"""Reads of the environments pages: who sees what, log order, image choices, fixed query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from environments import selectors
from tests.environments.factories import (
    EnvironmentEventFactory,
    EnvironmentFactory,
    ImageFactory,
    ImageTagFactory,
)
from tests.factories import NO_ROLE, UserFactory, auditor, member, site_admin, site_manager

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_owners():
    mia, oscar = member(username="mia"), member(username="oscar")
    return (
        mia,
        oscar,
        EnvironmentFactory(owner=mia, name="mine"),
        EnvironmentFactory(owner=oscar, name="theirs"),
    )


def test_members_see_only_their_own(two_owners):
    mia, _oscar, mine, theirs = two_owners
    assert list(selectors.visible_environments(mia)) == [mine]
    assert selectors.environment_get(user=mia, pk=mine.pk) == mine
    with pytest.raises(Http404):
        selectors.environment_get(user=mia, pk=theirs.pk)


def test_users_without_a_role_see_only_their_own(two_owners):
    _mia, _oscar, mine, _theirs = two_owners
    nobody = UserFactory(username="nobody", role=NO_ROLE)
    assert list(selectors.visible_environments(nobody)) == []
    with pytest.raises(Http404):
        selectors.environment_get(user=nobody, pk=mine.pk)


@pytest.mark.parametrize("make", [site_admin, site_manager, auditor])
def test_admins_managers_and_auditors_see_all(two_owners, make):
    _mia, _oscar, mine, theirs = two_owners
    viewer = make(username="viewer")
    assert set(selectors.visible_environments(viewer)) == {mine, theirs}
    assert selectors.environment_get(user=viewer, pk=theirs.pk) == theirs


def test_owner_filter_applies_only_for_those_who_see_all(two_owners):
    mia, _oscar, mine, theirs = two_owners
    assert list(selectors.environment_list(user=site_manager(username="max"), owner="oscar")) == [theirs]
    assert list(selectors.environment_list(user=mia, owner="oscar")) == [mine]


def test_list_is_newest_first_with_owner_and_image_joined(two_owners, django_assert_num_queries):
    _mia, _oscar, mine, theirs = two_owners
    viewer = site_admin(username="ada")
    rows = list(selectors.environment_list(user=viewer))
    assert rows == [theirs, mine]
    with django_assert_num_queries(0):
        assert [(r.owner.username, r.image.repository) for r in rows]


def test_events_are_the_newest_ones_oldest_first():
    env = EnvironmentFactory()
    start = timezone.now()
    for i in range(5):
        EnvironmentEventFactory(environment=env, message=f"line {i}", time=start + timedelta(seconds=i))
    EnvironmentEventFactory(message="another environment")
    events = selectors.environment_events(env, limit=3)
    assert [e.message for e in events] == ["line 2", "line 3", "line 4"]


def test_owned_environment_count():
    mia = member(username="mia")
    EnvironmentFactory.create_batch(3, owner=mia)
    EnvironmentFactory()
    assert selectors.owned_environment_count(mia) == 3


def test_enabled_images_have_tags_and_put_deprecated_last(django_assert_num_queries):
    old = ImageTagFactory(image__repository="aaa/old", image__deprecated=True).image
    current = ImageTagFactory(image__repository="zzz/current").image
    ImageTagFactory(image__repository="bbb/disabled", image__enabled=False)
    ImageFactory(repository="ccc/untagged")
    with django_assert_num_queries(2):
        images = selectors.enabled_images()
        assert [i.repository for i in images] == [current.repository, old.repository]
        assert [t.tag for t in images[0].tags.all()] == ["1.0"]


def test_image_list_has_every_image_with_default_tag_first(django_assert_num_queries):
    image = ImageFactory(repository="aaa/one", enabled=False)
    ImageTagFactory(image=image, tag="a", is_default=False)
    ImageTagFactory(image=image, tag="z", is_default=True)
    ImageFactory(repository="bbb/two")
    with django_assert_num_queries(2):
        images = list(selectors.image_list())
        assert [i.repository for i in images] == ["aaa/one", "bbb/two"]
        assert [t.tag for t in images[0].tags.all()] == ["z", "a"]
