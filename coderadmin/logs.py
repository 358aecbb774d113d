"""Structured logs: one JSON object per line (LOG_FORMAT=json) carrying the request id, the user
id and the environment id of whatever the line is about.

The ids live in context variables, so every log call made while a request, a task or a watcher
event is handled carries them without being passed around: ``RequestIdMiddleware`` binds them for
web requests, the Celery hooks below for tasks, and ``bind()`` for anything else.
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery import signals as celery_signals

CONTEXT_FIELDS = ("request_id", "user_id", "environment_id")
_context: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(name, default=None) for name in CONTEXT_FIELDS
}
# The Celery message header that carries the request id from the web process into the task.
REQUEST_ID_HEADER = "coderadmin_request_id"
# Environment tasks take the environment id as their first argument.
_ENVIRONMENT_TASK_PREFIX = "environments."


def current(name: str) -> Any:
    return _context[name].get()


def set_context(**values: Any) -> dict[str, contextvars.Token]:
    """Set some of the ids; returns tokens for ``reset_context``."""
    return {name: _context[name].set(value) for name, value in values.items()}


def reset_context(tokens: dict[str, contextvars.Token]) -> None:
    for name, token in tokens.items():
        _context[name].reset(token)


@contextmanager
def bind(**values: Any) -> Iterator[None]:
    """``with bind(environment_id=7): ...``: log lines inside carry the ids."""
    tokens = set_context(**values)
    try:
        yield
    finally:
        reset_context(tokens)


def new_request_id() -> str:
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (as attributes, None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, _context[name].get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# --------------------------------------------------------------------------- Celery


@celery_signals.before_task_publish.connect(dispatch_uid="coderadmin.logs.publish")
def _carry_request_id(headers: dict | None = None, **kwargs: Any) -> None:
    request_id = _context["request_id"].get()
    if headers is not None and request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


def _sent_request_id(request: Any) -> str | None:
    """The header set by ``_carry_request_id``: a worker shows custom headers as attributes of the
    task request, an eager run keeps them in ``request.headers``."""
    return getattr(request, REQUEST_ID_HEADER, None) or (getattr(request, "headers", None) or {}).get(
        REQUEST_ID_HEADER
    )


_task_tokens: dict[str, dict[str, contextvars.Token]] = {}


@celery_signals.task_prerun.connect(dispatch_uid="coderadmin.logs.prerun")
def _bind_task(task_id: str | None = None, task: Any = None, args: Any = None, **kwargs: Any) -> None:
    if not task_id or task is None:
        return
    values: dict[str, Any] = {
        "request_id": _sent_request_id(task.request) or task_id,
        "user_id": None,
        "environment_id": None,
    }
    if task.name.startswith(_ENVIRONMENT_TASK_PREFIX) and args:
        values["environment_id"] = args[0]
    _task_tokens[task_id] = set_context(**values)


@celery_signals.task_postrun.connect(dispatch_uid="coderadmin.logs.postrun")
def _unbind_task(task_id: str | None = None, **kwargs: Any) -> None:
    tokens = _task_tokens.pop(task_id, None) if task_id else None
    if tokens is not None:
        reset_context(tokens)
