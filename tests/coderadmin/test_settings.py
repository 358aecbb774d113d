"""Settings read from the environment, checked in fresh interpreters with exactly the given variables."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "db_name": str(db["NAME"]), "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"], "cluster": settings.CLUSTER_MODE,
    "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS, "attempts": settings.LOGIN_RATE_LIMIT_ATTEMPTS,
    "proxies": settings.TRUSTED_PROXY_COUNT,
    "log_formatter": settings.LOGGING["handlers"]["console"]["formatter"],
}))
"""


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    """Only PATH and the given variables: nothing from this test run leaks in."""
    return {"PATH": os.environ["PATH"], "CODERADMIN_VAR_DIR": str(tmp_path / "var"), **values}


def _settings(tmp_path: Path, **values: str) -> subprocess.CompletedProcess:
    env = {**_env(tmp_path, **values), "DJANGO_SETTINGS_MODULE": "coderadmin.settings"}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def _ok(tmp_path: Path, **values: str) -> dict:
    result = _settings(tmp_path, **values)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _production(**extra: str) -> dict[str, str]:
    return {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "coderadmin.example.com", **extra}


def test_embedded_defaults_need_no_server(tmp_path):
    found = _ok(tmp_path, DEBUG="true")
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["db_name"] == str(tmp_path / "var" / "coderadmin.sqlite3")
    assert found["broker"] == "filesystem://"
    assert found["cache"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert found["cluster"] == "simulated"
    assert (tmp_path / "var" / "broker" / "in").is_dir()


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = _settings(tmp_path, ALLOWED_HOSTS="x.example.com", KUBECONFIG="/dev/null")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_database_url_selects_postgresql(tmp_path):
    found = _ok(tmp_path, DEBUG="true", DATABASE_URL="postgres://u:p@db.example.com:5432/coder")
    assert found["engine"] == "django.db.backends.postgresql"
    assert found["db_name"] == "coder"


def test_redis_url_selects_redis_broker_and_cache(tmp_path):
    found = _ok(tmp_path, DEBUG="true", REDIS_URL="redis://cache.example.com:6379/2")
    assert found["broker"] == "redis://cache.example.com:6379/2"
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_simulated_cluster_is_refused_in_production_unless_allowed(tmp_path):
    result = _settings(tmp_path, **_production())
    assert result.returncode != 0
    assert "simulated cluster is refused in production" in result.stderr
    assert _ok(tmp_path, **_production(ALLOW_SIMULATED_CLUSTER="true"))["cluster"] == "simulated"


def test_cluster_mode_follows_kubeconfig_or_in_cluster(tmp_path):
    assert _ok(tmp_path, **_production(KUBECONFIG="/etc/kube/config"))["cluster"] == "kubeconfig"
    assert _ok(tmp_path, **_production(KUBERNETES_SERVICE_HOST="10.0.0.1"))["cluster"] == "incluster"


def test_numbers_and_lists_are_parsed(tmp_path):
    found = _ok(
        tmp_path,
        DEBUG="true",
        ALLOWED_HOSTS="a.example.com,b.example.com",
        LOGIN_RATE_LIMIT_ATTEMPTS="7",
        TRUSTED_PROXY_COUNT="2",
    )
    assert found["hosts"] == ["a.example.com", "b.example.com"]
    assert (found["attempts"], found["proxies"]) == (7, 2)


def test_log_format_defaults_to_json_in_production_and_is_checked(tmp_path):
    assert _ok(tmp_path, **_production(ALLOW_SIMULATED_CLUSTER="true"))["log_formatter"] == "json"
    assert _ok(tmp_path, DEBUG="true")["log_formatter"] == "plain"
    result = _settings(tmp_path, DEBUG="true", LOG_FORMAT="xml")
    assert result.returncode != 0 and "LOG_FORMAT must be plain or json" in result.stderr


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_variables(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    env = _env(tmp_path, **_production(KUBECONFIG=str(kubeconfig)))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
