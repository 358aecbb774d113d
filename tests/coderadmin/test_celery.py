"""The Celery app carries the product-wide task defaults from settings."""

from __future__ import annotations

from django.conf import settings

from coderadmin.celery import app


def test_task_defaults():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_ignore_result is True


def test_broker_and_beat_come_from_settings():
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert isinstance(app.conf.beat_schedule, dict)
    assert app.conf.beat_schedule_filename == settings.CELERY_BEAT_SCHEDULE_FILENAME
