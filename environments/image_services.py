"""Writes of the Images page: create, update, enable/disable, each with an audit entry.

Registry credentials are write-only: a blank password on update keeps the stored one, and audit
entries record only whether credentials are set, never their value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from coderadmin.audit import audit_record
from environments.models import Image, ImageTag
from environments.references import validate_tag

# The image fields an admin edits (the Images page and the Django admin), password excepted.
IMAGE_FIELDS = (
    "repository",
    "description",
    "username",
    "run_as_uid",
    "command",
    "min_cpu_millicores",
    "min_memory_mib",
    "min_disk_gib",
    "registry_username",
    "enabled",
    "deprecated",
)


@dataclass(frozen=True)
class ImageData:
    """What a site admin enters for an image. ``default_tag`` blank means the first tag."""

    repository: str
    tags: tuple[str, ...]
    default_tag: str = ""
    description: str = ""
    username: str = "coder"
    run_as_uid: int | None = None
    command: list[str] | None = None
    min_cpu_millicores: int = 250
    min_memory_mib: int = 512
    min_disk_gib: int = 1
    registry_username: str = ""
    enabled: bool = True
    deprecated: bool = False


def image_snapshot(image: Image) -> dict[str, Any]:
    """The audited view of an image: every field but the password, which shows only as set or not."""
    values = {field: getattr(image, field) for field in IMAGE_FIELDS}
    tags = list(image.tags.order_by("-is_default", "tag"))
    values["tags"] = [t.tag for t in tags]
    values["default_tag"] = next((t.tag for t in tags if t.is_default), "")
    values["registry_credentials"] = image.has_registry_credentials
    return values


def _checked_tags(data: ImageData) -> tuple[list[str], str]:
    tags = list(dict.fromkeys(data.tags))
    errors: list[str] = []
    for tag in tags:
        if len(tag) > ImageTag._meta.get_field("tag").max_length:
            errors.append(f"“{tag[:40]}…” is too long.")
            continue
        try:
            validate_tag(tag)
        except ValidationError as exc:
            errors.extend(f"“{tag}”: {message}" for message in exc.messages)
    if not tags:
        errors.append("Give at least one tag.")
    if errors:
        raise ValidationError({"tags": errors})
    default = data.default_tag or tags[0]
    if default not in tags:
        raise ValidationError({"default_tag": "The default tag must be one of the tags."})
    return tags, default


def _apply(image: Image, data: ImageData, registry_password: str, clear_credentials: bool) -> None:
    for field in IMAGE_FIELDS:
        setattr(image, field, getattr(data, field))
    if clear_credentials:
        image.registry_username = ""
        image.registry_password = ""
    elif registry_password:
        image.registry_password = registry_password


def _sync_tags(image: Image, tags: list[str], default: str) -> None:
    image.tags.exclude(tag__in=tags).delete()
    image.tags.update(is_default=False)
    existing = set(image.tags.values_list("tag", flat=True))
    ImageTag.objects.bulk_create(ImageTag(image=image, tag=tag) for tag in tags if tag not in existing)
    image.tags.filter(tag=default).update(is_default=True)


def image_create(
    *, actor: Any, data: ImageData, registry_password: str = "", request: HttpRequest | None = None
) -> Image:
    """Create an image with its tags; raise ValidationError (keyed by field) on bad input."""
    tags, default = _checked_tags(data)
    image = Image()
    _apply(image, data, registry_password, clear_credentials=False)
    image.full_clean()
    with transaction.atomic():
        image.save()
        _sync_tags(image, tags, default)
        audit_record("image.create", actor=actor, target=image, request=request, after=image_snapshot(image))
    return image


def image_update(
    image: Image,
    *,
    actor: Any,
    data: ImageData,
    registry_password: str = "",
    clear_credentials: bool = False,
    request: HttpRequest | None = None,
) -> Image:
    """Update an image and replace its tags. A blank password keeps the stored credentials."""
    tags, default = _checked_tags(data)
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        before = image_snapshot(image)
        _apply(image, data, registry_password, clear_credentials)
        image.full_clean()
        image.save()
        _sync_tags(image, tags, default)
        audit_record(
            "image.update",
            actor=actor,
            target=image,
            request=request,
            before=before,
            after=image_snapshot(image),
        )
    return image


def image_set_enabled(
    image: Image, *, actor: Any, enabled: bool, request: HttpRequest | None = None
) -> Image:
    """Offer (or stop offering) an image for new environments; existing ones keep running."""
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        if image.enabled != enabled:
            image.enabled = enabled
            image.save(update_fields=["enabled", "updated_at"])
            audit_record(
                "image.enable" if enabled else "image.disable",
                actor=actor,
                target=image,
                request=request,
                before={"enabled": not enabled},
                after={"enabled": enabled},
            )
    return image
