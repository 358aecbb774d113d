"""Middleware of our own: security headers on every response, and the health endpoints."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from coderadmin import health


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy (settings.CONTENT_SECURITY_POLICY) to every response.

    It sits first in MIDDLEWARE so that error pages and health answers get it too. Django's
    SecurityMiddleware and XFrameOptionsMiddleware add nosniff, Referrer-Policy and frame denial,
    but health answers return before they run, so the same headers are defaulted here as well.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        return response


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before host validation and the HTTPS redirect.

    Probes (Kubernetes, compose) address the process by IP over plain HTTP, which ALLOWED_HOSTS
    and SECURE_SSL_REDIRECT would otherwise reject.
    """

    paths = {"/healthz": health.healthz, "/readyz": health.readyz}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.paths.get(request.path_info.rstrip("/") or "/")
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
