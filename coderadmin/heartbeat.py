"""Liveness heartbeats of the background processes: worker, beat and watcher.

Each process records "I am alive" twice: in a file ``VAR_DIR/heartbeats/<process>`` (read by the
probe running inside the same container or pod: ``manage.py check_heartbeat``) and in the cache
(Redis in compose and Kubernetes, files under ``var/`` in embedded mode), which the web process
reads for Manage > System status. The newest of the two counts.

- worker: a beat when the worker is ready, then every HEARTBEAT_INTERVAL_SECONDS from the
  worker's own event loop timer, so a wedged loop stops beating.
- beat: a beat when beat starts, then each time it publishes the tiny ``coderadmin.beat_tick``
  task (scheduled every HEARTBEAT_INTERVAL_SECONDS), so it proves the scheduler loop runs and
  the broker accepts its messages.
- watcher: its loop writes ``VAR_DIR/watcher.heartbeat``, read here too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import shared_task
from celery import signals as celery_signals
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

PROCESSES = ("worker", "beat", "watcher")
BEAT_TICK_TASK = "coderadmin.beat_tick"
# The file the watcher's loop writes (infrastructure.watcher.HEARTBEAT_FILE).
WATCHER_FILE = "watcher.heartbeat"
_CACHE_PREFIX = "heartbeat:"
# Cache entries outlive any sensible staleness limit, then vanish ("never seen").
_CACHE_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class Liveness:
    process: str
    last_seen: float | None
    max_age: int

    @property
    def age(self) -> float | None:
        return None if self.last_seen is None else max(time.time() - self.last_seen, 0.0)

    @property
    def alive(self) -> bool:
        age = self.age
        return age is not None and age <= self.max_age


def _directory() -> Path:
    return Path(settings.VAR_DIR) / "heartbeats"


def _files(process: str) -> list[Path]:
    paths = [_directory() / process]
    if process == "watcher":
        paths.append(Path(settings.VAR_DIR) / WATCHER_FILE)
    return paths


def beat(process: str, now: float | None = None) -> None:
    """Record that ``process`` is alive. Never raises: a full disk or a Redis outage must not kill
    the process whose liveness this is (the missing beat shows the problem instead)."""
    stamp = time.time() if now is None else now
    path = _directory() / process
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{process}.tmp")
        temporary.write_text(f"{stamp:.3f}\n")
        temporary.replace(path)
    except OSError as exc:
        logger.warning("heartbeat file of %s not written: %s", process, exc)
    try:
        cache.set(f"{_CACHE_PREFIX}{process}", stamp, _CACHE_TTL)
    except Exception as exc:  # any cache backend error
        logger.warning("heartbeat of %s not cached: %s", process, exc)


def _read_file(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def last_seen(process: str, *, use_cache: bool = True) -> float | None:
    """The newest recorded beat of ``process`` (epoch seconds), or None if there is none."""
    stamps = [_read_file(path) for path in _files(process)]
    if use_cache:
        try:
            stamps.append(cache.get(f"{_CACHE_PREFIX}{process}"))
        except Exception as exc:  # the status page still shows the file's answer
            logger.warning("heartbeat of %s not read from the cache: %s", process, exc)
    found = [float(stamp) for stamp in stamps if stamp is not None]
    return max(found) if found else None


def max_age() -> int:
    return settings.HEARTBEAT_MAX_AGE_SECONDS


def liveness(process: str, *, maximum: int | None = None, use_cache: bool = True) -> Liveness:
    return Liveness(process, last_seen(process, use_cache=use_cache), maximum or max_age())


# --------------------------------------------------------------------------- Celery hooks


@celery_signals.worker_ready.connect(dispatch_uid="coderadmin.heartbeat.worker_ready")
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """``sender`` is the worker's consumer; its timer runs in the worker's event loop."""
    beat("worker")
    timer = getattr(sender, "timer", None)
    if timer is not None:
        timer.call_repeatedly(settings.HEARTBEAT_INTERVAL_SECONDS, beat, ("worker",))


@celery_signals.beat_init.connect(dispatch_uid="coderadmin.heartbeat.beat_init")
def _beat_init(sender: Any = None, **kwargs: Any) -> None:
    beat("beat")


@celery_signals.after_task_publish.connect(dispatch_uid="coderadmin.heartbeat.published")
def _after_publish(sender: str | None = None, **kwargs: Any) -> None:
    """Runs in the publishing process: for the tick, that is beat."""
    if sender == BEAT_TICK_TASK:
        beat("beat")


@shared_task(name=BEAT_TICK_TASK, ignore_result=True)
def beat_tick() -> None:
    """Scheduled by beat so that publishing it proves beat alive (see ``_after_publish``)."""
