"""Environment for the test run, loaded as a pytest plugin (``-p coderadmin.pytest_env``).

It must run before pytest-django imports the settings, which is why it is a plugin and not a
conftest. Values already in the environment win, so CI points the suite at PostgreSQL and Redis
with DATABASE_URL and REDIS_URL.
"""

import os
from pathlib import Path

_VAR = Path(__file__).resolve().parent.parent / "var" / "test"

for key, value in {
    "SECRET_KEY": "test-secret-key-not-for-production",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "ALLOW_SIMULATED_CLUSTER": "true",
    "SECURE_SSL_REDIRECT": "false",
    "STATIC_MANIFEST": "false",
    "CODERADMIN_VAR_DIR": str(_VAR),
    "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
}.items():
    os.environ.setdefault(key, value)
