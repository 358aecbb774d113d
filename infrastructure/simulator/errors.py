"""API errors of the simulated cluster, rendered as Kubernetes ``Status`` objects.

Every failure a handler can produce is an ``APIError``; the HTTP layer turns it into the
response body and code. Messages follow the real API server's shapes, because clients (and the
product's gateway) parse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class APIError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, plural: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details.update(extra)
    return details


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> APIError:
    return APIError(
        404, "NotFound", f'{_qualified(group, plural)} "{name}" not found', _details(name, group, plural)
    )


def already_exists(group: str, plural: str, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{_qualified(group, plural)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(group: str, plural: str, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
        _details(name, group, plural),
    )


def stale_resource_version(group: str, plural: str, name: str) -> APIError:
    return conflict(
        group,
        plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


@dataclass(frozen=True)
class Cause:
    """One entry of ``details.causes`` in a 422: ``reason`` is e.g. FieldValueRequired."""

    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> APIError:
    """422: ``<Kind> "<name>" is invalid: [<field>: <message>, ...]`` with details.causes."""
    parts = [f"{c.field}: {c.message}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return APIError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind, "causes": [c.as_dict() for c in causes]}
        if group
        else {"name": name, "kind": kind, "causes": [c.as_dict() for c in causes]},
    )


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def forbidden(message: str, group: str = "", plural: str = "", name: str | None = None) -> APIError:
    details = _details(name, group, plural) if plural else None
    return APIError(403, "Forbidden", message, details)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str = "the server does not allow this method on the requested resource"):
    return APIError(405, "MethodNotAllowed", message)


def expired(message: str) -> APIError:
    """410 for a resourceVersion older than the bounded event history (list ``continue`` too)."""
    return APIError(410, "Expired", message)


def gone(message: str) -> APIError:
    return APIError(410, "Gone", message)


_ACCEPTED_MEDIA = (
    "application/json, application/merge-patch+json, application/strategic-merge-patch+json, "
    "application/json-patch+json, application/apply-patch+yaml"
)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{_ACCEPTED_MEDIA} (got {content_type})",
    )


def too_many_requests(retry_after: int) -> APIError:
    return APIError(
        429,
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def internal_error(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")
