"""Every variable the settings read is documented in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_documents_every_settings_variable():
    settings_text = (ROOT / "coderadmin" / "settings.py").read_text()
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", settings_text))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert len(read) > 20
    assert read <= documented, f"missing from .env.example: {sorted(read - documented)}"


def test_env_example_documents_the_process_variables():
    documented = (ROOT / ".env.example").read_text()
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "POSTGRES_PASSWORD", "SITE_ADMIN_PASSWORD"):
        assert f"\n{name}=" in documented
