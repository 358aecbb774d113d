"""Liveness probe of a background process: exit 0 when its heartbeat is fresh, 1 when stale."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from coderadmin import heartbeat


class Command(BaseCommand):
    help = "Exit non-zero when the heartbeat of worker, beat or watcher is older than --max-age seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("process", choices=heartbeat.PROCESSES)
        parser.add_argument(
            "--max-age", type=int, default=None, help="Seconds (default: HEARTBEAT_MAX_AGE_SECONDS)."
        )
        parser.add_argument(
            "--file-only",
            action="store_true",
            help="Read only this container's heartbeat file, not the shared cache.",
        )

    def handle(self, *args: Any, process: str, max_age: int | None, file_only: bool, **options: Any) -> None:
        state = heartbeat.liveness(process, maximum=max_age, use_cache=not file_only)
        if state.age is None:
            raise CommandError(f"{process}: no heartbeat recorded", returncode=1)
        if not state.alive:
            raise CommandError(
                f"{process}: last heartbeat {state.age:.0f}s ago (limit {state.max_age}s)", returncode=1
            )
        self.stdout.write(f"{process}: alive, last heartbeat {state.age:.0f}s ago")
