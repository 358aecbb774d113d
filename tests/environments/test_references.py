import contextlib

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from environments.references import (
    DOCKER_HUB_AUTH_KEY,
    is_digest,
    join_reference,
    parse_reference,
    registry_auth_key,
    split_repository,
    validate_repository,
    validate_tag,
)

SHA = "sha256:" + "a" * 64

VALID_REFERENCES = [
    # reference, registry, path, tag, digest
    ("ubuntu", "docker.io", "library/ubuntu", "", ""),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", ""),
    ("codercom/enterprise-base:ubuntu", "docker.io", "codercom/enterprise-base", "ubuntu", ""),
    ("registry:5000/a/b:tag", "registry:5000", "a/b", "tag", ""),
    ("localhost/dev", "localhost", "dev", "", ""),
    ("localhost:5000/team/dev:1.0", "localhost:5000", "team/dev", "1.0", ""),
    ("ghcr.io/org/repo", "ghcr.io", "org/repo", "", ""),
    (
        "registry.example.com/a__b/c.d/e-f---g:_latest",
        "registry.example.com",
        "a__b/c.d/e-f---g",
        "_latest",
        "",
    ),
    (f"ghcr.io/org/repo@{SHA}", "ghcr.io", "org/repo", "", SHA),
    (f"ghcr.io/org/repo:1.2@{SHA}", "ghcr.io", "org/repo", "1.2", SHA),
    ("10.0.0.1:5000/dev:v1", "10.0.0.1:5000", "dev", "v1", ""),
    ("[::1]:5000/dev:v1", "[::1]:5000", "dev", "v1", ""),
    ("Registry.Example.com/dev", "Registry.Example.com", "dev", "", ""),
    ("a/b:" + "x" * 128, "docker.io", "a/b", "x" * 128, ""),
]

INVALID_REFERENCES = [
    ("", "Enter an image reference"),
    ("Ubuntu", "lowercase"),
    ("docker.io/Team/dev", "lowercase"),
    ("registry.example.com/", "needs a path"),
    ("a//b", "not a valid repository path component"),
    ("a/b_", "not a valid repository path component"),
    ("a/-b", "not a valid repository path component"),
    ("a/b...c", "not a valid repository path component"),
    ("a/b:", "Enter a tag"),
    ("a/b:-tag", "A tag uses"),
    ("a/b:" + "x" * 129, "at most 128"),
    ("a/b:tag with space", "A tag uses"),
    ("a/b@sha256:abc", "at least 32"),
    ("a/b@" + "sha256:" + "A" * 64, "64 lowercase"),
    ("a/b@latest", "digest"),
    ("-bad.host/dev", "not a valid registry host"),
    ("host_name.example/dev", "not a valid registry host"),
    ("a/" + "b" * 260, "at most 255"),
    ("a/b:1.0@sha256:zz", "digest"),
]


@pytest.mark.parametrize(("reference", "registry", "path", "tag", "digest"), VALID_REFERENCES)
def test_valid_references_parse(reference, registry, path, tag, digest):
    parsed = parse_reference(reference)
    assert (parsed.registry, parsed.path, parsed.tag, parsed.digest) == (registry, path, tag, digest)
    assert parsed.repository == f"{registry}/{path}"


@pytest.mark.parametrize(("reference", "message"), INVALID_REFERENCES)
def test_invalid_references_are_refused_with_a_clear_message(reference, message):
    with pytest.raises(ValidationError) as info:
        parse_reference(reference)
    assert message in " ".join(info.value.messages)


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ("team/dev:1.0", "without a tag"),
        ("registry:5000/dev:1.0", "without a tag"),
        (f"team/dev@{SHA}", "without a digest"),
        ("", "Enter an image repository"),
    ],
)
def test_repository_field_refuses_tags_and_digests(repository, message):
    with pytest.raises(ValidationError) as info:
        validate_repository(repository)
    assert message in " ".join(info.value.messages)


def test_repository_with_registry_port_is_not_mistaken_for_a_tag():
    validate_repository("registry:5000/a/b")


@pytest.mark.parametrize("tag", ["latest", "1.0", "_x", "A-Z.9", SHA, "sha512:" + "0" * 128])
def test_valid_tags_and_digests(tag):
    validate_tag(tag)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "é", "sha256:short", "sha256:" + "g" * 64])
def test_invalid_tags(tag):
    with pytest.raises(ValidationError):
        validate_tag(tag)


def test_join_reference_uses_at_for_digests_and_colon_for_tags():
    assert join_reference("ghcr.io/a/b", "1.0") == "ghcr.io/a/b:1.0"
    assert join_reference("ghcr.io/a/b", SHA) == f"ghcr.io/a/b@{SHA}"
    assert is_digest(SHA)
    assert not is_digest("1.0")


def test_split_repository_and_auth_keys():
    assert split_repository("ubuntu") == ("docker.io", "library/ubuntu")
    assert split_repository("team/dev") == ("docker.io", "team/dev")
    assert registry_auth_key("team/dev") == DOCKER_HUB_AUTH_KEY
    assert registry_auth_key("docker.io/team/dev") == DOCKER_HUB_AUTH_KEY
    assert registry_auth_key("registry:5000/a/b") == "registry:5000"


@given(st.text(max_size=300))
def test_parsing_never_crashes(value):
    try:
        parsed = parse_reference(value)
    except ValidationError:
        return
    assert parsed.path


@given(st.text(max_size=300))
def test_repository_and_tag_validation_never_crash(value):
    for check in (validate_repository, validate_tag):
        with contextlib.suppress(ValidationError):
            check(value)
