"""Sign-in: failed-attempt rate limiting and the audit entries for logins and logouts.

Failures are counted per username and client address in Django's cache for a fixed window
(``LOGIN_RATE_LIMIT_WINDOW``). When the window ends the counter is gone, so a guesser slows down
to a few tries per window and the real user is never locked out for longer than one window.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest

from coderadmin.audit import audit_record, client_ip

logger = logging.getLogger(__name__)


def _key(username: str, ip: str | None) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}|{ip or '-'}".encode()).hexdigest()
    return f"login-failures:{digest}"


def _cache_call(default: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """Use the cache, but keep sign-in working when it is down (Redis outage): the limit is then
    not enforced, which is logged, rather than locking everyone out."""
    try:
        return getattr(cache, method)(*args, **kwargs)
    except Exception as exc:
        logger.warning("sign-in rate limit unavailable, cache error: %s", exc)
        return default


def login_blocked_for(username: str, request: HttpRequest | None) -> int:
    """Seconds until this username may try again from this address (0: not blocked)."""
    state = _cache_call(None, "get", _key(username, client_ip(request)))
    if not state or state["count"] < settings.LOGIN_RATE_LIMIT_ATTEMPTS:
        return 0
    return max(1, math.ceil(state["until"] - time.time()))


def login_failed(username: str, request: HttpRequest | None) -> None:
    """Count one failure. The window starts at the first failure and is not extended by later ones."""
    key = _key(username, client_ip(request))
    now = time.time()
    state = _cache_call(None, "get", key)
    if not state or state["until"] <= now:
        state = {"count": 0, "until": now + settings.LOGIN_RATE_LIMIT_WINDOW}
    state["count"] += 1
    _cache_call(None, "set", key, state, timeout=max(1, math.ceil(state["until"] - now)))


def login_succeeded(username: str, request: HttpRequest | None) -> None:
    _cache_call(None, "delete", _key(username, client_ip(request)))


class RateLimitedAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing to check the password while the pair is rate limited."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "That username and password do not match an active account. Check both and try again."
        ),
        "rate_limited": "Too many failed sign-in attempts for this account from your address. "
        "Try again in %(minutes)s minute(s).",
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        wait = login_blocked_for(username, self.request)
        if wait:
            audit_record(
                "auth.login_rate_limited",
                target=username,
                request=self.request,
                message="Sign-in refused: too many failed attempts.",
            )
            raise forms.ValidationError(
                self.error_messages["rate_limited"],
                code="rate_limited",
                params={"minutes": math.ceil(wait / 60)},
            )
        cleaned = super().clean()
        login_succeeded(username, self.request)
        return cleaned


@receiver(user_login_failed)
def _record_failed_login(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **kw: Any
) -> None:
    username = str(credentials.get("username", ""))
    login_failed(username, request)
    audit_record("auth.login_failed", target=username, request=request, message="Wrong username or password.")


@receiver(user_logged_in)
def _record_login(sender: Any, request: HttpRequest | None, user: Any, **kw: Any) -> None:
    audit_record("auth.login", actor=user, target=user, request=request)


@receiver(user_logged_out)
def _record_logout(sender: Any, request: HttpRequest | None, user: Any, **kw: Any) -> None:
    if user is not None:
        audit_record("auth.logout", actor=user, target=user, request=request)


class AdminLoginForm(RateLimitedAuthenticationForm, AdminAuthenticationForm):
    """The Django admin's login form with the same rate limit, so /admin/login/ is no way around it."""
