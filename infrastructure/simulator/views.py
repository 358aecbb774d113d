"""The read-only view of the store that admission and RBAC get (no HTTP, no locking concerns).

Interface: ``StoreView.list(group, plural, namespace=None) -> list[dict]`` and
``StoreView.get(group, plural, namespace, name) -> dict | None``; objects are the stored dicts
(callers must not mutate them).
"""

from __future__ import annotations

from typing import Any, Protocol


class StoreView(Protocol):
    def list(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def get(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...
