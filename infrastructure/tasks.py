"""Thin Celery task: run the readiness checks of one queued report.

No retries: an unreachable cluster is itself a result (the report says "Unavailable"), and running the
task again for a finished report changes nothing.
"""

from __future__ import annotations

from celery import shared_task

from infrastructure import services


@shared_task(name="infrastructure.readiness_check", acks_late=True, ignore_result=True)
def readiness_check(report_id: int) -> None:
    services.readiness_run(report_id)
