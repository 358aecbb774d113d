"""Label and field selectors, parsed once per request and matched against stored objects.

The grammar is the API server's: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``,
``!a`` for labels; ``path=value``, ``path==value``, ``path!=value`` for fields, each kind supporting
only its documented field paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .resources import ResourceType

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*(?:(in|notin)\s*\((.*)\))?\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        # "!=" and "notin" also match objects without the key, as in Kubernetes.
        return labels.get(self.key) not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in (t.strip() for t in terms) if t]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``labelSelector``; a malformed selector is a 400 as on the real server."""
    if not text:
        return ()
    reqs = []
    for term in _split_terms(text):
        for op in ("==", "!=", "="):
            if op in term and "(" not in term:
                key, _, value = term.partition(op)
                key, value = key.strip(), value.strip()
                if not key or any(c in value for c in "=!"):
                    raise bad_request(f"unable to parse requirement: found '{term}', invalid selector")
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
                break
        else:
            m = _SET_RE.match(term)
            if not m or (m.group(1) and m.group(3)):
                raise bad_request(
                    f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !="
                )
            neg, key, setop, values = m.groups()
            if setop:
                vals = frozenset(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, setop, vals))
            else:
                reqs.append(Requirement(key, "!exists" if neg else "exists"))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], obj: dict[str, Any]) -> bool:
    if not reqs:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def _get_path(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "Event"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    ("events.k8s.io", "Event"): (
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    ),
    ("", "Namespace"): ("status.phase",),
    ("", "Node"): ("spec.unschedulable",),
    ("", "Secret"): ("type",),
    ("", "PersistentVolumeClaim"): (),
}


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":
        return _get_path(obj, "source.component")
    return _get_path(obj, path)


def parse_field_selector(text: str | None, rt: ResourceType) -> Callable[[dict[str, Any]], bool] | None:
    """Parse ``fieldSelector`` into a predicate; unsupported paths are a 400 with the real message."""
    if not text:
        return None
    allowed = _COMMON_FIELDS + _KIND_FIELDS.get((rt.group, rt.kind), ())
    terms: list[tuple[str, bool, str]] = []
    for term in _split_terms(text):
        for op in ("==", "!=", "="):
            if op in term:
                path, _, value = term.partition(op)
                path, value = path.strip(), value.strip()
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        terms.append((path, op == "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, p) == v) != neg for p, neg, v in terms)

    return match


def exact_name(text: str | None) -> str | None:
    """The name a ``metadata.name=<x>`` field selector pins, so lists can skip a full scan."""
    if not text:
        return None
    for term in _split_terms(text):
        path, sep, value = term.partition("=")
        if sep and path.strip() == "metadata.name":
            return value.lstrip("=").strip()
    return None
