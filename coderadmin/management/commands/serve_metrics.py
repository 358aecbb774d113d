"""Serve this pod's metrics on a port of their own, for pods without a web process (worker,
watcher on Kubernetes): run beside the process, sharing its PROMETHEUS_MULTIPROC_DIR.

Without METRICS_TOKEN the sidecar still runs but answers 404 to everything (like the web endpoint),
so a deployment that has not set a token yet does not crash-loop its pods."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import CONTENT_TYPE_LATEST

from coderadmin import metrics


class MetricsHandler(BaseHTTPRequestHandler):
    """GET /metrics with the bearer token; the same answers as the web endpoint."""

    def do_GET(self) -> None:
        if not settings.METRICS_TOKEN or self.path.split("?")[0].rstrip("/") != "/metrics":
            self._answer(404, b"Not found.\n")
        elif not metrics.bearer_matches(self.headers.get("Authorization", ""), settings.METRICS_TOKEN):
            self._answer(
                401, b"A valid bearer token is required.\n", {"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
        else:
            self._answer(200, metrics.render(include_database=False), {"Content-Type": CONTENT_TYPE_LATEST})

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the logs."""


class Command(BaseCommand):
    help = "Serve /metrics of the processes sharing PROMETHEUS_MULTIPROC_DIR (404 without METRICS_TOKEN)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--bind", default="0.0.0.0")  # noqa: S104 - scraped from other pods

    def handle(self, *args: Any, port: int, bind: str, **options: Any) -> None:
        server = ThreadingHTTPServer((bind, port), MetricsHandler)
        if settings.METRICS_TOKEN:
            self.stdout.write(f"Serving metrics on {bind}:{server.server_address[1]}")
        else:
            self.stderr.write(f"METRICS_TOKEN is not set: {bind}:{server.server_address[1]} answers 404.")
        try:
            server.serve_forever()
        finally:
            server.server_close()
