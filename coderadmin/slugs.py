"""DNS-1123 safe names for cluster objects.

A name that is already safe is returned unchanged. Any other name is normalised and gets a
short hash of the original appended after a triple dash. Safe names never contain ``--``, so an
unchanged name can never equal a hashed one, and two different inputs never share a slug
(short of a SHA-256 prefix collision).
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
_SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_INVALID_RUN = re.compile(r"[^a-z0-9]+")
_HASH_LEN = 10


def is_safe_slug(name: str, max_length: int = DNS_LABEL_MAX) -> bool:
    """True when ``name`` is a DNS-1123 label that ``safe_slug`` would return unchanged."""
    return len(name) <= max_length and "--" not in name and bool(_SAFE.match(name))


def safe_slug(name: str, max_length: int = DNS_LABEL_MAX) -> str:
    """Return ``name`` if it is safe, else a normalised, hash-suffixed DNS-1123 label."""
    if is_safe_slug(name, max_length):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    suffix = f"---{digest}"
    base = _INVALID_RUN.sub("-", name.lower()).strip("-")
    base = base[: max_length - len(suffix)].rstrip("-")
    if not base:
        return f"x{suffix}"[:max_length]
    return f"{base}{suffix}"


def join_slugs(*parts: str, max_length: int = DNS_LABEL_MAX) -> str:
    """Join already-safe parts with ``-`` into one safe name, hashing when too long."""
    joined = "-".join(parts)
    return safe_slug(joined, max_length)
