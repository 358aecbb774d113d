"""Conversion between core/v1 Events (the stored form) and events.k8s.io/v1 Events.

As in Kubernetes, both APIs serve the same objects: an event written through one is read through
the other with its fields renamed.
"""

from __future__ import annotations

from typing import Any

# core/v1 field -> events.k8s.io/v1 field
_RENAMES = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_BACK = {new: old for old, new in _RENAMES.items()}


def _rename(obj: dict[str, Any], names: dict[str, str], api_version: str) -> dict[str, Any]:
    out = {names.get(key, key): value for key, value in obj.items()}
    out["apiVersion"], out["kind"] = api_version, "Event"
    return out


def event_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    """events.k8s.io/v1 Event -> stored core/v1 Event."""
    return _rename(obj, _BACK, "v1")


def event_from_core(obj: dict[str, Any]) -> dict[str, Any]:
    """Stored core/v1 Event -> events.k8s.io/v1 Event."""
    return _rename(obj, _RENAMES, "events.k8s.io/v1")
