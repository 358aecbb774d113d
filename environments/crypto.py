"""Encryption at rest for registry credentials.

Fernet (AES-128-CBC + HMAC-SHA256) with ``settings.CREDENTIALS_ENCRYPTION_KEY`` when it is set;
otherwise a key derived from ``SECRET_KEY`` with HKDF, so a fresh install works without another
secret. A database dump alone then never reveals a registry password.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_HKDF_SALT = b"coderadmin"
_HKDF_INFO = b"coderadmin registry credentials v1"


class DecryptionError(Exception):
    """The stored value was encrypted with another key (or is corrupt)."""


def derive_key(secret_key: str) -> bytes:
    """A Fernet key derived from ``secret_key``; stable for a given secret."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        secret_key.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw)


@cache
def _fernet(configured_key: str, secret_key: str) -> Fernet:
    if configured_key:
        try:
            return Fernet(configured_key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ImproperlyConfigured(
                "CREDENTIALS_ENCRYPTION_KEY must be 32 bytes in URL-safe base64 "
                "(generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')."
            ) from exc
    return Fernet(derive_key(secret_key))


def fernet() -> Fernet:
    """The Fernet instance for the current settings."""
    return _fernet(getattr(settings, "CREDENTIALS_ENCRYPTION_KEY", "") or "", settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext``; the empty string stays empty (no credential)."""
    if not plaintext:
        return ""
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a value made by ``encrypt``; raise ``DecryptionError`` if the key does not match."""
    if not token:
        return ""
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise DecryptionError(
            "Stored registry credentials cannot be decrypted with the current key "
            "(was SECRET_KEY or CREDENTIALS_ENCRYPTION_KEY changed?). Enter them again."
        ) from exc
