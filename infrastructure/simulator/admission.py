"""Admission of the simulated API server: Pod Security Admission and ResourceQuota.

Interface used by the server:
- ``admit(store, operation, group, version, kind, namespace, obj, old=None) -> None``; raises
  ``APIError`` 403 with the real "violates PodSecurity" / "exceeded quota" / "must specify" messages.
  ``store`` is a ``StoreView`` (see ``views.py``).
"""

from __future__ import annotations

from typing import Any


def admit(
    store,
    operation: str,
    group: str,
    version: str,
    kind: str,
    namespace: str | None,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
) -> None:
    return None
