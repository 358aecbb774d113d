"""A minimal OpenAPI v3 description, enough for kubectl to validate on the server.

kubectl looks for the ``fieldValidation`` query parameter on each kind's PATCH operation (found by
its ``x-kubernetes-group-version-kind``) and then sends ``fieldValidation=Strict`` instead of
validating against schemas itself; no schemas are published.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import RESOURCES

_QUERY = [
    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_versions() -> list[tuple[str, str]]:
    return list(dict.fromkeys((rt.group, rt.version) for rt in RESOURCES))


def document(group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in RESOURCES:
        if (rt.group, rt.version) != (group, version) or "patch" not in rt.verbs:
            continue
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        path = f"/{_gv_path(group, version)}{scope}/{rt.plural}/{{name}}"
        gvk = {"group": group, "version": version, "kind": rt.kind}
        paths[path] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": _QUERY,
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.4"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def root() -> dict[str, Any]:
    out = {}
    for group, version in group_versions():
        digest = hashlib.sha256(json.dumps(document(group, version)).encode()).hexdigest()[:32].upper()
        out[_gv_path(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
        }
    return {"paths": out}


def lookup(path: str) -> dict[str, Any] | None:
    """The document served at ``/openapi/v3/<path>`` (``None`` when unknown)."""
    for group, version in group_versions():
        if path == _gv_path(group, version):
            return document(group, version)
    return None
