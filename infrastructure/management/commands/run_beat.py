"""``python manage.py run_beat``: Celery beat as a singleton held by the Lease ``coderadmin-beat``.

Any number of replicas may run it; the one holding the Lease (in the environments namespace) runs
``celery beat`` as a child process, the others wait. Beat is stopped as soon as the Lease is lost, and
a standby starts its own within a lease duration (at once when the leader exits cleanly). Two beats
would enqueue every periodic task twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from coderadmin import heartbeat
from infrastructure import gateway as gw
from infrastructure.leader import RENEW_EVERY_SECONDS, LeaderElection
from infrastructure.models import InfrastructureSettings

log = logging.getLogger(__name__)

LEASE_NAME = "coderadmin-beat"
STOP_TIMEOUT_SECONDS = 10.0


def beat_command(schedule: str) -> list[str]:
    """The Celery beat the leader runs (the same as ``celery -A coderadmin beat``)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "coderadmin",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        schedule,
    ]


class BeatProcess:
    """The beat child process of the leader: started, checked and stopped by the election loop."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        log.info("beat started (pid %d)", self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def halt(self) -> None:
        """SIGTERM (beat saves its schedule and exits), then SIGKILL after ``STOP_TIMEOUT_SECONDS``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("beat stopped")


def run(
    stop: threading.Event,
    election: LeaderElection,
    command: Sequence[str],
    *,
    renew_every: float = RENEW_EVERY_SECONDS,
) -> None:
    """Until ``stop``: run beat while holding the lease. A standby keeps the beat heartbeat fresh so
    its own liveness probe passes; a beat that dies while we lead is started again."""
    beat = BeatProcess(command)

    def standby_heartbeat() -> None:
        if not beat.alive():
            heartbeat.beat("beat")

    election.run(
        stop,
        start=beat.start,
        halt=beat.halt,
        alive=beat.alive,
        tick=standby_heartbeat,
        renew_every=renew_every,
    )


class Command(BaseCommand):
    help = "Run Celery beat on the one replica holding the Lease coderadmin-beat; the others wait."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--identity", help="name in the Lease (default: host name and pid)")
        parser.add_argument(
            "--schedule",
            default=settings.CELERY_BEAT_SCHEDULE_FILENAME,
            help="beat's schedule file (default: CELERY_BEAT_SCHEDULE_FILENAME)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            namespace = InfrastructureSettings.load().environments_namespace
            identity = options["identity"] or f"{socket.gethostname()}-{os.getpid()}"
            election = LeaderElection(gw.Gateway(), namespace, identity, LEASE_NAME)
            self.stdout.write(f"beat candidate {identity} (Lease {namespace}/{LEASE_NAME})")
            run(stop, election, beat_command(options["schedule"]))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
