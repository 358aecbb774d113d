"""The patch formats of PATCH requests: JSON merge, strategic merge, JSON patch, and apply.

Strategic merge knows the merge keys of the fields the product uses (containers, volumes, env,
ports, volume mounts, ownerReferences, conditions...); lists without a merge key are replaced, as
for ``tolerations`` in Kubernetes. Server-side apply is served as a strategic merge of the applied
configuration (field ownership is not tracked).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import APIError, bad_request

JSON_MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_MERGE, STRATEGIC, JSON_PATCH, APPLY)

# Merge keys of lists that strategic merge patches merge instead of replacing.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "addresses": "type",
    "resourceClaims": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Lists of scalars merged as sets.
_SET_LISTS = {"finalizers"}


def _invalid_patch(message: str) -> APIError:
    return APIError(
        422, "Invalid", f"the server rejected our request due to an error in our request: {message}"
    )


def json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge(result.get(key), value)
    return result


def _ports_key(items: list[Any]) -> str:
    sample = next((i for i in items if isinstance(i, dict)), {})
    return "containerPort" if "containerPort" in sample else "port"


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        return _ports_key(items)
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, current: list[Any], patch: list[Any], delete_nulls: bool) -> list[Any]:
    if field in _SET_LISTS:
        merged = list(current)
        merged.extend(v for v in patch if v not in merged)
        return merged
    key = _merge_key(field, list(current) + list(patch))
    if key is None:
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [i for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return copy.deepcopy(patch)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        position = next(
            (
                n
                for n, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append(_strategic(None, item, delete_nulls))
        else:
            result[position] = _strategic(result[position], item, delete_nulls)
    return result


def _strategic(target: Any, patch: Any, delete_nulls: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            if delete_nulls:
                result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, list) and isinstance(current, list):
            result[key] = _merge_list(key, current, value, delete_nulls)
        elif isinstance(value, list):
            result[key] = [
                _strategic(None, i, delete_nulls)
                for i in value
                if not (isinstance(i, dict) and i.get("$patch") in ("delete", "replace") and len(i) == 1)
            ]
        elif isinstance(value, dict):
            merged = _strategic(current, value, delete_nulls)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result


def strategic_merge(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch (``application/strategic-merge-patch+json``)."""
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return _strategic(target, patch, delete_nulls=True)


def apply_config(target: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Merge an applied configuration into the live object (server-side apply without ownership)."""
    return _strategic(target, applied, delete_nulls=False)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_patch(f"add operation does not apply: doc is missing path: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise _invalid_patch(f"doc is missing path: {path!r}: missing value")
    return cur


def _add(doc: Any, parts: list[str], value: Any, path: str, replace: bool) -> Any:
    if not parts:
        return copy.deepcopy(value)
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _invalid_patch(
                f"replace operation does not apply: doc is missing key: {path}: missing value"
            )
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(copy.deepcopy(value))
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = copy.deepcopy(value)
            else:
                parent.insert(int(last), copy.deepcopy(value))
        else:
            raise _invalid_patch(
                f"add operation does not apply: doc is missing path: {path!r}: missing value"
            )
    else:
        raise _invalid_patch(f"doc is missing path: {path!r}: missing value")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise _invalid_patch("unable to remove the whole document")
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _invalid_patch(f"remove operation does not apply: doc is missing path: {path!r}: missing value")


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 operations: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in ("add", "replace"):
            if "value" not in op:
                raise _invalid_patch(f"missing value for {kind} operation")
            doc = _add(doc, parts, op["value"], path, replace=kind == "replace")
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind in ("move", "copy"):
            source = op.get("from", "")
            value = _resolve(doc, _pointer(source), source)
            if kind == "move":
                _remove(doc, _pointer(source), source)
            doc = _add(doc, parts, copy.deepcopy(value), path, replace=False)
        elif kind == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise _invalid_patch(f"testing value {path} failed: test failed")
        else:
            raise _invalid_patch(f"Unexpected kind: {kind}")
    if not isinstance(doc, dict):
        raise _invalid_patch("the patched document is not an object")
    return doc
