"""Liveness and readiness answers for probes (served by HealthCheckMiddleware).

``/healthz`` says the process is serving. ``/readyz`` also checks the database and the Celery
broker, and names each part in its JSON body so an operator sees at once which one is down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

# Seconds a probe may wait on the broker; probes time out themselves after a few seconds.
BROKER_TIMEOUT = 2.0


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    """Reach the broker in ``settings.CELERY_BROKER_URL`` (Redis, or the filesystem transport)."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(
            url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
        )
        try:
            client.ping()
        finally:
            client.close()
    elif url.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            folder = options.get(key, "")
            if not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
                raise OSError(f"broker folder {key} is missing or not writable")
    else:
        raise ValueError("unsupported broker URL scheme")


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = "failed"
            errors[name] = type(exc).__name__
        else:
            results[name] = "ok"
    body: dict = {"status": "ok" if not errors else "unavailable", "checks": results}
    if errors:
        body["failed"] = sorted(errors)
        body["errors"] = errors
    return JsonResponse(body, status=503 if errors else 200)
