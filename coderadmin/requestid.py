"""X-Request-ID: every request gets an id (the proxy's, when it sent a sane one), echoed in the
response and carried by every log line written while the request is handled."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from coderadmin import logs

HEADER = "X-Request-ID"
# Ids from outside are kept only when short and made of safe characters (they end up in logs).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Views whose ``pk`` argument is an environment id (environments/urls.py).
_ENVIRONMENT_VIEWS = "environments:"


class RequestIdMiddleware:
    """First in MIDDLEWARE so even health answers and error pages carry the id.

    ``process_view`` runs after authentication: it adds the user id and, on environment pages,
    the environment id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get(HEADER, "")
        request_id = supplied if _SAFE_ID.match(supplied) else logs.new_request_id()
        request.request_id = request_id
        tokens = logs.set_context(request_id=request_id, user_id=None, environment_id=None)
        try:
            response = self.get_response(request)
        finally:
            logs.reset_context(tokens)
        response[HEADER] = request_id
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            logs.set_context(user_id=user.pk)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name.startswith(_ENVIRONMENT_VIEWS) and "pk" in kwargs:
            logs.set_context(environment_id=kwargs["pk"])
