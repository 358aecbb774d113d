"""/healthz and /readyz: what probes see when everything works and when a part is down."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

pytestmark = pytest.mark.django_db


def test_healthz_says_alive(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_probes_work_by_ip_over_plain_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/healthz", "/readyz", "/healthz/"):
        response = client.get(path, HTTP_HOST="10.1.2.3:8000")
        assert response.status_code == 200


def test_broker_down_gives_503_naming_it(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "broker": "failed"}
    assert body["failed"] == ["broker"]
    assert body["errors"]["broker"] == "ConnectionError"


def test_filesystem_broker_folder_missing_gives_503(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "missing"),
        "data_folder_out": str(tmp_path / "missing"),
        "processed_folder": str(tmp_path),
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    (tmp_path / "missing").mkdir()
    assert client.get("/readyz").status_code == 200


def test_unknown_broker_scheme_is_not_ready(client, settings):
    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1//"
    assert client.get("/readyz").json()["errors"] == {"broker": "ValueError"}


def test_database_down_gives_503_naming_it(client):
    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failed", "broker": "ok"}
    assert response.json()["errors"] == {"database": "OperationalError"}


def test_only_get_and_head_are_answered_by_the_probe(client):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 404
