"""Reads for the environments and images pages.

Each function returns rows with everything its page shows already joined or prefetched, so a page
costs the same number of queries for one row as for a thousand. Visibility (own environments, or
everyone's for roles that see all) is decided here, once, for pages, partials and actions alike.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from coderadmin.roles import can_view_all_environments
from environments.models import Environment, EnvironmentEvent, Image, ImageTag

# The environment page shows the newest build-log lines only; a long log stays cheap to poll.
EVENTS_SHOWN = 300


def visible_environments(user: Any) -> QuerySet[Environment]:
    """The environments ``user`` may see: their own, or all of them for admins, managers, auditors."""
    environments = Environment.objects.select_related("owner", "image")
    if can_view_all_environments(user):
        return environments
    return environments.filter(owner=user)


def environment_list(*, user: Any, owner: str = "") -> QuerySet[Environment]:
    """The list page's rows, newest first; ``owner`` (a username) filters for those who see all."""
    environments = visible_environments(user)
    if owner and can_view_all_environments(user):
        environments = environments.filter(owner__username=owner)
    return environments.order_by("-created_at", "-id")


def environment_get(*, user: Any, pk: int) -> Environment:
    """One environment ``user`` may see; 404 otherwise, so others' environments do not leak."""
    try:
        return visible_environments(user).get(pk=pk)
    except Environment.DoesNotExist:
        raise Http404("No such environment.") from None


def environment_events(environment: Environment, *, limit: int = EVENTS_SHOWN) -> list[EnvironmentEvent]:
    """The newest ``limit`` events of the build log, oldest first (newest last, as a log reads)."""
    newest = environment.events.order_by("-time", "-id")[:limit]
    return list(reversed(newest))


def owned_environment_count(user: Any) -> int:
    """How many environments ``user`` owns (for the per-member limit)."""
    return Environment.objects.filter(owner=user).count()


def enabled_images() -> list[Image]:
    """Images members may choose, with their tags (default first); deprecated ones last."""
    tags = Prefetch("tags", queryset=ImageTag.objects.order_by("-is_default", "tag"))
    images = Image.objects.filter(enabled=True).prefetch_related(tags).order_by("deprecated", "repository")
    return [image for image in images if image.tags.all()]


def image_list() -> QuerySet[Image]:
    """Every image with its tags, for the Images page."""
    tags = Prefetch("tags", queryset=ImageTag.objects.order_by("-is_default", "tag"))
    return Image.objects.prefetch_related(tags).order_by("repository")
