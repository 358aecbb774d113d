"""Authentication and RBAC authorisation of the simulated API server.

Interface used by the server:
- ``UserInfo(username, groups)``.
- ``authorize(store, user, verb, group, resource, subresource, namespace, name) -> None``: raise
  ``APIError`` 403 with the real message: ``<kind> "<name>" is forbidden: User "<u>" cannot <verb>
  resource "<resource>" in API group "<group>" in the namespace "<ns>"`` (shape varies by scope).
- ``allowed(...) -> tuple[bool, str]`` for SelfSubjectAccessReview.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserInfo:
    username: str
    groups: tuple[str, ...] = field(default_factory=tuple)


def authorize(
    store,
    user: UserInfo,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str | None,
    name: str | None,
) -> None:
    return None
