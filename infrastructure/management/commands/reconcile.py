"""``python manage.py reconcile``: one drift-reconciler sweep now, with its report."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from infrastructure.reconciler import reconcile


class Command(BaseCommand):
    help = "Compare the cluster with the database once, fix the drift, and print what was done."

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile()
        for line in report.lines():
            self.stdout.write(line)
        if report.errors:
            raise CommandError(f"the sweep met {len(report.errors)} error(s); see above")
