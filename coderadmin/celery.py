"""The Celery app. Task defaults for the whole product live in settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coderadmin.settings")

app = Celery("coderadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
