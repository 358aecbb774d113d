"""Decoding checks (400) and object validation (422) of the simulated API server.

Interface used by the server (owned by the validation work; the server only calls these):
- ``decode(group, version, kind, body, strict) -> list[str]``: raise ``APIError`` 400 like the real
  decoder for wrong types / unparsable quantities / (strict) unknown fields; return warnings
  (``unknown field "spec.foo"``) for unknown fields when not strict.
- ``validate(group, version, kind, obj, old=None) -> None``: raise ``errors.invalid`` (422) with
  causes; ``old`` is the stored object on update (immutable fields).
"""

from __future__ import annotations

from typing import Any


def decode(group: str, version: str, kind: str, body: dict[str, Any], strict: bool) -> list[str]:
    return []


def validate(group: str, version: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None):
    return None
