"""Thin Celery tasks: load nothing, call the provisioner with ids, retry transient API errors.

``acks_late`` (settings) means a task lost with a crashed worker is redelivered; more important,
``recovery.requeue_stuck`` re-enqueues environments left in a transitional state. Only
``Unavailable`` (5xx, 429, timeouts, connection errors) is retried, with exponential backoff and
full jitter, never sooner than the server's Retry-After; after the last retry the environment turns
Error with the reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from celery import Task, shared_task

from environments import provisioner, services
from environments.states import TransitionNotAllowed
from infrastructure.gateway import Unavailable

log = logging.getLogger(__name__)

MAX_RETRIES = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff, at least the server's Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    return max(delay, retry_after or 0.0)


def _run(task: Task, work: Callable[[int, int], None], environment_id: int, generation: int) -> None:
    try:
        work(environment_id, generation)
    except Unavailable as exc:
        if task.request.retries >= task.max_retries:
            reason = f"the Kubernetes API stayed unavailable: {exc.message}"
            try:
                services.environment_mark_error(environment_id, reason=reason, generation=generation)
            except TransitionNotAllowed:
                log.warning("environment %s: %s (left for the reconciler)", environment_id, reason)
            return
        raise task.retry(exc=exc, countdown=retry_delay(task.request.retries, exc.retry_after)) from exc


_OPTIONS = {"bind": True, "acks_late": True, "max_retries": MAX_RETRIES, "ignore_result": True}


@shared_task(name="environments.build", **_OPTIONS)
def build_environment(self: Task, environment_id: int, generation: int) -> None:
    _run(self, provisioner.build, environment_id, generation)


@shared_task(name="environments.stop", **_OPTIONS)
def stop_environment(self: Task, environment_id: int, generation: int) -> None:
    _run(self, provisioner.stop, environment_id, generation)


@shared_task(name="environments.delete", **_OPTIONS)
def delete_environment(self: Task, environment_id: int, generation: int) -> None:
    _run(self, provisioner.delete, environment_id, generation)
