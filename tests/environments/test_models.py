import base64
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from coderadmin.slugs import is_safe_slug
from environments.models import (
    RESERVED_ENVIRONMENT_NAMES,
    Environment,
    EnvironmentEvent,
    ImageTag,
    kubernetes_base_name,
    validate_command,
    validate_environment_name,
)
from environments.references import DOCKER_HUB_AUTH_KEY
from infrastructure.models import InfrastructureSettings
from tests.environments.factories import (
    EnvironmentEventFactory,
    EnvironmentFactory,
    ImageFactory,
    ImageTagFactory,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["a", "dev", "dev-box-2", "x" * 32, "a1"])
def test_valid_environment_names(name):
    validate_environment_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter a name"),
        ("x" * 33, "at most 32"),
        ("Dev", "lowercase"),
        ("1dev", "start with a letter"),
        ("dev-", "end with"),
        ("de--v", "single hyphens"),
        ("dév", "lowercase"),
        ("dev box", "lowercase"),
        ("new", "reserved"),
        ("admin", "reserved"),
    ],
)
def test_invalid_environment_names(name, message):
    with pytest.raises(ValidationError) as info:
        validate_environment_name(name)
    assert message in info.value.messages[0]


def test_reserved_words_include_url_words():
    assert {"new", "admin"} <= RESERVED_ENVIRONMENT_NAMES


def test_environment_full_clean_reports_field_errors():
    env = EnvironmentFactory.build(owner=make_user(), image=ImageFactory(), name="Bad Name", tag="-x")
    with pytest.raises(ValidationError) as info:
        env.full_clean()
    assert {"name", "tag"} <= set(info.value.message_dict)


def test_name_is_unique_per_owner_but_not_across_owners():
    first = EnvironmentFactory(name="dev")
    EnvironmentFactory(name="dev")  # another owner
    with pytest.raises(IntegrityError), transaction.atomic():
        EnvironmentFactory(name="dev", owner=first.owner)


def test_gpus_are_refused_for_cvms():
    env = EnvironmentFactory.build(owner=make_user(), image=ImageFactory(), cvm=True, gpu_count=1)
    with pytest.raises(ValidationError, match="GPUs are not supported"):
        env.full_clean()


def test_backend_only_for_cvms():
    env = EnvironmentFactory.build(
        owner=make_user(), image=ImageFactory(), cvm=False, cvm_backend="supervisor"
    )
    with pytest.raises(ValidationError, match="Only container-based"):
        env.full_clean()


def test_image_in_use_cannot_be_deleted():
    from django.db.models import ProtectedError

    env = EnvironmentFactory()
    with pytest.raises(ProtectedError):
        env.image.delete()


def test_image_repository_is_validated():
    image = ImageFactory.build(repository="Registry.example.com/Team/Dev:1.0")
    with pytest.raises(ValidationError) as info:
        image.full_clean()
    assert "repository" in info.value.message_dict


@pytest.mark.parametrize("username", ["root1", "coder", "_svc", "dev-user"])
def test_image_usernames(username):
    ImageFactory.build(username=username).full_clean()


@pytest.mark.parametrize("username", ["", "1abc", "Coder", "a" * 33, "a b"])
def test_bad_image_usernames(username):
    with pytest.raises(ValidationError):
        ImageFactory.build(username=username).full_clean()


def test_run_as_uid_must_not_be_root():
    with pytest.raises(ValidationError) as info:
        ImageFactory.build(run_as_uid=0).full_clean()
    assert "run_as_uid" in info.value.message_dict
    ImageFactory.build(run_as_uid=1000).full_clean()


@pytest.mark.parametrize("command", [None, ["/usr/bin/code-server", "--bind", "0.0.0.0:8080"]])
def test_valid_commands(command):
    validate_command(command)


@pytest.mark.parametrize("command", [[], "sleep infinity", [1], [""], {"a": 1}])
def test_invalid_commands(command):
    with pytest.raises(ValidationError):
        validate_command(command)


def test_credentials_need_both_parts():
    image = ImageFactory.build(registry_username="robot")
    with pytest.raises(ValidationError, match="password"):
        image.full_clean()
    image = ImageFactory.build()
    image.registry_password = "token"
    with pytest.raises(ValidationError, match="user name"):
        image.full_clean()


def test_docker_config_json_for_a_private_registry():
    image = ImageFactory(repository="registry:5000/a/b", registry_username="robot")
    image.registry_password = "tok:en"
    config = json.loads(image.docker_config_json())
    entry = config["auths"]["registry:5000"]
    assert entry["username"] == "robot"
    assert entry["password"] == "tok:en"
    assert base64.b64decode(entry["auth"]).decode() == "robot:tok:en"


def test_docker_hub_credentials_use_the_index_key():
    image = ImageFactory(repository="team/dev", registry_username="robot")
    image.registry_password = "x"
    assert list(json.loads(image.docker_config_json())["auths"]) == [DOCKER_HUB_AUTH_KEY]


def test_public_image_has_no_docker_config():
    image = ImageFactory()
    assert not image.has_registry_credentials
    assert image.docker_config_json() is None
    image.registry_password = ""
    assert image.registry_password_encrypted == ""


def test_tag_reference_and_unique_tags():
    tag = ImageTagFactory(image__repository="ghcr.io/a/b", tag="1.0")
    assert tag.reference == "ghcr.io/a/b:1.0"
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageTagFactory(image=tag.image, tag="1.0", is_default=False)


def test_one_default_tag_per_image():
    first = ImageTagFactory(tag="1.0")
    second = ImageTag(image=first.image, tag="2.0", is_default=True)
    with pytest.raises(ValidationError, match="already has a default"):
        second.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


def test_an_image_needs_a_default_tag():
    image = ImageFactory()
    with pytest.raises(ValidationError, match="exactly one default"):
        ImageTag(image=image, tag="1.0", is_default=False).full_clean()
    ImageTag(image=image, tag="1.0", is_default=True).full_clean()
    ImageTagFactory(image=image, tag="1.0")
    ImageTag(image=image, tag="2.0", is_default=False).full_clean()


def test_kubernetes_names_are_assigned_once_and_never_recomputed():
    infra = InfrastructureSettings.load()
    env = EnvironmentFactory(owner=make_user("bob"), name="web")
    assert env.assign_kubernetes_names(infra) is True
    env.save()
    assert (env.namespace, env.pod_name, env.network_policy_name) == (
        "coderadmin-environments",
        "bob-web",
        "bob-web",
    )
    assert env.pvc_name == "bob-web-data"
    assert env.registry_secret_name == "bob-web-registry"
    stored = (env.namespace, env.pod_name, env.pvc_name, env.registry_secret_name, env.network_policy_name)

    env.owner.handle = "robert"
    env.owner.save()
    env.name = "api"
    infra.environments_namespace = "elsewhere"
    infra.save()
    env.refresh_from_db()
    assert env.assign_kubernetes_names(infra) is False
    env.save()
    env.refresh_from_db()
    assert (
        env.namespace,
        env.pod_name,
        env.pvc_name,
        env.registry_secret_name,
        env.network_policy_name,
    ) == stored


def test_hyphenated_handles_get_unambiguous_hashed_names():
    assert kubernetes_base_name("a", "b-c") == "a-b-c"
    hashed = kubernetes_base_name("a-b", "c")
    assert hashed != "a-b-c"
    assert hashed.startswith("a-b-c---")


def test_long_names_fit_a_dns_label():
    name = kubernetes_base_name("h" * 32, "n" * 32)
    assert len(name) <= 63
    assert is_safe_slug(name.replace("---", "-"))


def test_duplicate_pod_names_are_refused_by_the_database():
    infra = InfrastructureSettings.load()
    env = EnvironmentFactory()
    env.assign_kubernetes_names(infra)
    env.save()
    other = EnvironmentFactory()
    other.namespace, other.pod_name = env.namespace, env.pod_name
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


_handles = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True).filter(
    lambda h: "--" not in h
)
_names = st.from_regex(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True).filter(lambda n: "--" not in n)


@settings(max_examples=300)
@given(st.tuples(_handles, _names), st.tuples(_handles, _names))
def test_different_owner_name_pairs_never_collide(first, second):
    a, b = kubernetes_base_name(*first), kubernetes_base_name(*second)
    assert (a == b) == (first == second)
    for name in (a, b):
        assert len(name) <= 63
        assert re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", name)


@given(st.text(max_size=40), st.text(max_size=40))
def test_base_name_never_crashes_on_odd_input(handle, name):
    assert len(kubernetes_base_name(handle, name)) <= 63


def test_events_are_ordered_by_time_and_deleted_with_the_environment():
    event = EnvironmentEventFactory(message="second")
    earlier = EnvironmentEvent.objects.create(
        environment=event.environment,
        time=event.time.replace(year=event.time.year - 1),
        type=EnvironmentEvent.Type.ERROR,
        source=EnvironmentEvent.Source.SUPERVISOR,
        message="first",
    )
    assert list(event.environment.events.all()) == [earlier, event]
    assert "error: first" in str(earlier)
    event.environment.delete()
    assert not EnvironmentEvent.objects.exists()


def test_image_reference_uses_the_environment_tag():
    env = EnvironmentFactory(image__repository="ghcr.io/a/b", tag="2.1")
    assert env.image_reference == "ghcr.io/a/b:2.1"
    assert str(env) == env.name
    assert Environment.objects.get(pk=env.pk).state == "creating"
