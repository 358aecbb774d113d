"""Image references checked against the OCI distribution grammar.

An image row stores a repository (``[host[:port]/]path``) and each of its tags stores a tag or a
digest; the pull reference is ``repository:tag`` or ``repository@digest``. Checking them here means
a bad reference is a form error on the Images page instead of a pod that never pulls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

NAME_MAX_LENGTH = 255
TAG_MAX_LENGTH = 128
DEFAULT_REGISTRY = "docker.io"
# Docker Hub's credentials live under this key in a Docker config file, not under docker.io.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_HOST_RE = re.compile(rf"^(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?$")
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*:[a-fA-F0-9]{32,}$")
DIGEST_HELP = "A digest looks like sha256: followed by at least 32 hexadecimal characters."
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``registry`` is the host (with port) a pull goes to."""

    registry: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"


def _looks_like_host(component: str) -> bool:
    # The distribution rule: the first component is a registry host when it has a dot, a port
    # or is localhost; otherwise the whole name is a Docker Hub path.
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def split_repository(repository: str) -> tuple[str, str]:
    """Return ``(registry, path)``; Docker Hub names get ``docker.io`` (and ``library/`` if bare)."""
    first, sep, rest = repository.partition("/")
    if sep and _looks_like_host(first):
        return first, rest
    if not sep:
        return DEFAULT_REGISTRY, f"library/{repository}"
    return DEFAULT_REGISTRY, repository


def validate_repository(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is ``[host[:port]/]path`` with no tag or digest."""
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter an image repository, such as registry.example.com/team/dev.")
    if len(value) > NAME_MAX_LENGTH:
        raise ValidationError(f"An image repository is at most {NAME_MAX_LENGTH} characters.")
    if "@" in value:
        raise ValidationError("Enter the repository without a digest; add digests as tags.")
    first, sep, _rest = value.partition("/")
    if sep and _looks_like_host(first):
        if not _HOST_RE.match(first):
            raise ValidationError(
                f"“{first}” is not a valid registry host (name or address, optional :port)."
            )
        path = value[len(first) + 1 :]
    else:
        path = value
    if not path:
        raise ValidationError("The repository needs a path after the registry host.")
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        raise ValidationError("Enter the repository without a tag; add tags separately.")
    for component in path.split("/"):
        if not _PATH_COMPONENT_RE.match(component):
            if component != component.lower():
                raise ValidationError(f"Repository paths must be lowercase (“{component}”).")
            raise ValidationError(
                f"“{component}” is not a valid repository path component: use lowercase letters and "
                "digits, separated by single '.', '_' or '__', or by hyphens."
            )


def is_digest(value: str) -> bool:
    return "@" not in value and ":" in value and bool(_DIGEST_RE.match(value))


def validate_tag(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a tag or a digest such as ``sha256:<64 hex>``."""
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter a tag, such as 1.0 or latest.")
    if ":" in value:
        if not _DIGEST_RE.match(value):
            raise ValidationError(DIGEST_HELP)
        if value.startswith("sha256:") and not _SHA256_RE.match(value):
            raise ValidationError("A sha256 digest has exactly 64 lowercase hexadecimal characters.")
        return
    if len(value) > TAG_MAX_LENGTH:
        raise ValidationError(f"A tag is at most {TAG_MAX_LENGTH} characters.")
    if not _TAG_RE.match(value):
        raise ValidationError(
            "A tag uses letters, digits, '_', '.' and '-', and starts with a letter, digit or '_'."
        )


def join_reference(repository: str, tag: str) -> str:
    """The pull reference of ``repository`` at ``tag`` (a tag or a digest)."""
    return f"{repository}@{tag}" if is_digest(tag) else f"{repository}:{tag}"


def parse_reference(value: str) -> Reference:
    """Parse a full reference ``repository[:tag][@digest]``; raise ``ValidationError`` if invalid."""
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter an image reference.")
    name, _, digest = value.partition("@")
    if digest:
        validate_tag(digest)
        if not is_digest(digest):
            raise ValidationError(DIGEST_HELP)
    tag = ""
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        validate_tag(tag)
        if is_digest(tag):
            raise ValidationError("Put a digest after '@', not after ':'.")
    validate_repository(name)
    registry, path = split_repository(name)
    return Reference(registry=registry, path=path, tag=tag, digest=digest)


def registry_auth_key(repository: str) -> str:
    """The key under ``auths`` of a Docker config file for pulls from ``repository``."""
    registry, _ = split_repository(repository)
    return DOCKER_HUB_AUTH_KEY if registry in {DEFAULT_REGISTRY, "index.docker.io"} else registry
