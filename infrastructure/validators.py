"""Validators for the infrastructure settings an admin types: the inner Docker bridge CIDR, the CVM node
selector and the CVM tolerations.

Each takes the raw text, returns a normalised Python value, and raises only
``django.core.exceptions.ValidationError`` with messages that say what to type instead.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError

# The inner Docker bridge: a /8 would swallow a whole private block, a /29 or smaller leaves no room.
BRIDGE_MIN_PREFIX = 8
BRIDGE_MAX_PREFIX = 28

# Longest text the selector and toleration fields accept; real ones are a few hundred bytes.
MAX_TEXT = 16_384

_SPECIAL_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), what)
    for net, what in (
        ("0.0.0.0/8", "the 'this network' range 0.0.0.0/8"),
        ("127.0.0.0/8", "the loopback range 127.0.0.0/8"),
        ("169.254.0.0/16", "the link-local range 169.254.0.0/16 (cloud metadata servers live there)"),
        ("224.0.0.0/4", "the multicast range 224.0.0.0/4"),
        ("240.0.0.0/4", "the reserved range 240.0.0.0/4"),
    )
)
_PRIVATE_HINT = "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10"

# Kubernetes label syntax (apimachinery's qualified name and label value rules).
_NAME_PART = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
_TOLERATION_FIELDS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_INT64_MAX = 2**63 - 1


def validate_bridge_cidr(value: str, cluster_cidrs: Iterable[str] = ()) -> str:
    """Check the inner Docker bridge range and return it normalised (``172.20.0.1/16`` → ``172.20.0.0/16``).

    ``cluster_cidrs`` are the cluster's pod and service ranges when known; unparsable or IPv6 entries are
    ignored (they cannot clash with an IPv4 bridge).
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValidationError("Enter a CIDR range such as 172.20.0.0/16.", code="required")
    if "/" not in text:
        raise ValidationError(
            f"{text!r} has no prefix length; write it like 172.20.0.0/16.",
            code="invalid",
            params={"value": text},
        )
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError(
            f"{text!r} is not a valid CIDR range; write it like 172.20.0.0/16.",
            code="invalid",
            params={"value": text},
        ) from None
    if network.version != 4:
        raise ValidationError(
            "Only IPv4 ranges are supported for the inner Docker bridge; write it like 172.20.0.0/16.",
            code="ipv4_only",
        )
    if not BRIDGE_MIN_PREFIX <= network.prefixlen <= BRIDGE_MAX_PREFIX:
        size = "too large a range" if network.prefixlen < BRIDGE_MIN_PREFIX else "too small"
        raise ValidationError(
            f"The prefix length must be between /{BRIDGE_MIN_PREFIX} and /{BRIDGE_MAX_PREFIX}; "
            f"/{network.prefixlen} is {size}.",
            code="prefix",
        )
    for special, what in _SPECIAL_RANGES:
        if network.overlaps(special):
            raise ValidationError(
                f"{network} overlaps {what}; use a private range such as 172.20.0.0/16.", code="reserved"
            )
    if network.is_global:
        raise ValidationError(
            f"{network} is a public internet range: inner containers could not reach those addresses. "
            f"Use a private range ({_PRIVATE_HINT}).",
            code="public",
        )
    clashes = []
    for raw in cluster_cidrs:
        try:
            cluster_net = ipaddress.ip_network(str(raw).strip(), strict=False)
        except ValueError:
            continue
        if cluster_net.version == 4 and network.overlaps(cluster_net):
            clashes.append(str(cluster_net))
    if clashes:
        ranges = ", ".join(clashes)
        raise ValidationError(
            f"{network} overlaps the cluster's pod/service range {ranges}; pick a range outside it.",
            code="overlap",
        )
    return str(network)


def label_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid Kubernetes label key (empty when it is)."""
    if not key:
        return ["the label key is empty"]
    prefix, slash, name = key.rpartition("/")
    errors = []
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        errors.append(f"the key prefix {prefix!r} must be a DNS subdomain such as example.com")
    if not name or len(name) > 63 or not _NAME_PART.fullmatch(name):
        errors.append(
            f"the key name {name!r} must be 1 to 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid Kubernetes label value (empty when it is)."""
    if value == "":
        return []
    if len(value) > 63 or not _NAME_PART.fullmatch(value):
        return [
            f"the value {value!r} must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        ]
    return []


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"The {what} are not valid JSON: {exc}.", code="json") from None


def _bounded(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"The {what} must be text.", code="invalid")
    if len(text) > MAX_TEXT:
        raise ValidationError(f"The {what} are too long (at most {MAX_TEXT} characters).", code="too_long")
    return text.strip()


def validate_node_selector(text: str) -> dict[str, str]:
    """Parse the CVM node selector: ``key=value`` lines (``#`` comments allowed) or a JSON object."""
    body = _bounded(text, "node selector labels")
    if not body:
        return {}
    pairs: list[tuple[str, str, str]] = []
    errors: list[str] = []
    if body.startswith("{"):
        # Text starting with "{" is either invalid JSON or an object.
        data = _load_json(body, "node selector labels")
        for key, value in data.items():
            if not isinstance(value, str):
                errors.append(f"{key!r}: the value must be a string (put it in quotes)")
                continue
            pairs.append((f"{key!r}", key, value))
    else:
        for number, line in enumerate(body.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                errors.append(f"line {number}: write key=value (got {line!r})")
                continue
            pairs.append((f"line {number}", key.strip(), value.strip()))
    selector: dict[str, str] = {}
    for where, key, value in pairs:
        problems = label_key_errors(key) + label_value_errors(value)
        if key in selector:
            problems.append(f"the key {key!r} appears twice")
        errors.extend(f"{where}: {problem}" for problem in problems)
        selector[key] = value
    if errors:
        raise ValidationError([ValidationError(e, code="invalid") for e in errors])
    return selector


def _toleration_errors(item: Any) -> tuple[list[str], dict[str, Any]]:
    """Problems of one toleration and its normalised form (operator spelled out)."""
    if not isinstance(item, dict):
        return (['must be an object like {"key": "dedicated", "operator": "Exists"}'], {})
    errors = [f"unknown field {name!r}" for name in item if name not in _TOLERATION_FIELDS]
    key = item.get("key", "")
    operator = item.get("operator", "Equal")
    value = item.get("value", "")
    effect = item.get("effect", "")
    for name, field in (("key", key), ("operator", operator), ("value", value), ("effect", effect)):
        if not isinstance(field, str):
            errors.append(f"{name} must be a string")
    if errors:
        return (errors, {})
    if key:
        errors.extend(label_key_errors(key))
    if operator not in TOLERATION_OPERATORS:
        errors.append(f"operator must be Equal or Exists, not {operator!r}")
    elif operator == "Exists":
        if value:
            errors.append("value must be empty when operator is Exists")
    else:
        if not key:
            errors.append("operator must be Exists when key is empty (that tolerates every taint)")
        errors.extend(label_value_errors(value))
    if effect not in TOLERATION_EFFECTS:
        errors.append(f"effect must be NoSchedule, PreferNoSchedule or NoExecute, not {effect!r}")
    normalised: dict[str, Any] = {"operator": operator}
    for name, field in (("key", key), ("value", value), ("effect", effect)):
        if field:
            normalised[name] = field
    if "tolerationSeconds" in item:
        seconds = item["tolerationSeconds"]
        if effect != "NoExecute":
            errors.append("tolerationSeconds is only allowed with effect NoExecute")
        elif isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= _INT64_MAX:
            errors.append("tolerationSeconds must be a whole number of seconds, 0 or more")
        else:
            normalised["tolerationSeconds"] = seconds
    return (errors, normalised)


def validate_tolerations(json_text: str) -> list[dict[str, Any]]:
    """Parse the CVM tolerations: a JSON list of Kubernetes toleration objects (empty text → none)."""
    body = _bounded(json_text, "tolerations")
    if not body:
        return []
    data = _load_json(body, "tolerations")
    if not isinstance(data, list):
        raise ValidationError(
            'The tolerations must be a JSON list, like [{"key": "dedicated", "operator": "Exists"}].',
            code="invalid",
        )
    result = []
    errors = []
    for index, item in enumerate(data, start=1):
        problems, normalised = _toleration_errors(item)
        errors.extend(f"toleration {index}: {problem}" for problem in problems)
        result.append(normalised)
    if errors:
        raise ValidationError([ValidationError(e, code="invalid") for e in errors])
    return result
