"""``python manage.py watch_cluster``: the one long-running watcher (see infrastructure/watcher.py)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from infrastructure.watcher import Watcher


class Command(BaseCommand):
    help = "Watch the environments' pods and events and feed their state back (leader-elected)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--identity", help="name in the leader Lease (default: host name and pid)")
        parser.add_argument(
            "--relist-seconds", type=float, default=300.0, help="full re-list period (default 300)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            watcher = Watcher(identity=options["identity"], relist_seconds=options["relist_seconds"])
            self.stdout.write(f"watching namespace {watcher.namespace} as {watcher.identity}")
            watcher.run(stop)  # returns once SIGTERM/SIGINT set ``stop``; the lease is released
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
