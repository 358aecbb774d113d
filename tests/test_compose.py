"""docker-compose.yml and the Dockerfile, checked as data (there is no Docker on our machines)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat", "watcher")


def _command(name: str) -> str:
    command = SERVICES[name]["command"]
    return " ".join(command) if isinstance(command, list) else command


def test_every_part_of_the_product_is_a_service():
    assert {"web", "worker", "beat", "watcher", "postgres", "redis", "migrate"} <= set(SERVICES)


def test_commands():
    assert "gunicorn coderadmin.asgi:application --worker-class uvicorn.workers.UvicornWorker" in _command(
        "web"
    )
    assert re.search(r"--workers \$\$\{WEB_CONCURRENCY:-\d+\}", _command("web"))
    assert re.search(r"--timeout \$\$\{GUNICORN_TIMEOUT:-\d+\}", _command("web"))
    assert _command("worker").startswith("celery -A coderadmin worker")
    assert _command("beat").startswith("python manage.py run_beat")
    assert _command("watcher") == "python manage.py watch_cluster"
    assert _command("migrate") == "python manage.py migrate --noinput"


def test_app_services_share_the_image_and_env_wiring():
    for name in APP_SERVICES:
        service = SERVICES[name]
        env = service["environment"]
        assert service["build"] == "."
        assert env["DATABASE_URL"].startswith("postgres://coderadmin:${POSTGRES_PASSWORD")
        assert env["DATABASE_URL"].endswith("@postgres:5432/coderadmin")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # compose refuses to start without it
        assert env["DEBUG"] == "false"
        assert env["KUBECONFIG"] == "/etc/coderadmin/kubeconfig"
        assert any(v.endswith(":/etc/coderadmin/kubeconfig:ro") for v in service["volumes"])
        for dependency in ("postgres", "redis"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["restart"] == "unless-stopped"


def test_healthchecks():
    assert "/readyz" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(SERVICES["redis"]["healthcheck"]["test"])
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_data_lives_in_named_volumes():
    assert {"postgres-data", "redis-data", "beat-data"} <= set(COMPOSE["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "redis-data:/data" in SERVICES["redis"]["volumes"]
    assert "beat-data:/app/var" in SERVICES["beat"]["volumes"]
    assert "/app/var/celerybeat-schedule" in _command("beat")


def test_web_is_published():
    assert SERVICES["web"]["ports"] == ["${WEB_PORT:-8000}:8000"]


def test_first_admin_command_is_documented_in_the_file():
    assert "python manage.py create_site_admin" in (ROOT / "docker-compose.yml").read_text()


def test_dockerfile_is_production_grade():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install -c requirements.lock ." in text
    assert "collectstatic --noinput" in text
    assert re.search(r"^USER coderadmin$", text, re.MULTILINE)
    assert text.index("collectstatic") < text.index("USER coderadmin")
    assert "gunicorn coderadmin.asgi:application --worker-class uvicorn.workers.UvicornWorker" in text
    assert "--timeout ${GUNICORN_TIMEOUT:-60}" in text


def test_dockerignore_keeps_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)
