"""The audit log's one write path. Every feature records what it changed by calling ``audit_record``."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest

from coderadmin.models import AuditEntry


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: the TCP peer, or the X-Forwarded-For entry added by the outermost of
    ``TRUSTED_PROXY_COUNT`` trusted proxies (entries further left are client-supplied and ignored)."""
    if request is None:
        return None
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def _jsonable(values: dict | None) -> dict:
    """Round-trip through Django's encoder so dates, UUIDs and decimals are stored as text."""
    if not values:
        return {}
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def audit_record(
    action: str,
    *,
    actor: Any = None,
    target: Any = None,
    request: HttpRequest | None = None,
    before: dict | None = None,
    after: dict | None = None,
    message: str = "",
) -> AuditEntry:
    """Append one entry. ``target`` is a model instance (its label, pk and text are kept) or a string.

    ``actor`` defaults to the request's user when it is signed in.
    """
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    target_type = target_id = target_repr = ""
    if isinstance(target, models.Model):
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_repr = str(target)[:255]
    elif target is not None:
        target_repr = str(target)[:255]
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        ip_address=client_ip(request),
        before=_jsonable(before),
        after=_jsonable(after),
        message=message,
    )
