"""The environments list page at 1,000 and 10,000 environments, rendered through Django's test client
(the whole middleware stack, no network) against PostgreSQL when ``DATABASE_URL`` names it, else SQLite.

Each size reports the median of N requests for a site admin (everyone's environments, first page)
and for a member (their own ten). The page is paginated with a fixed number of queries, so the
time should hardly grow with the number of rows.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import _support
from bench._support import ms, row

PATH = "/environments/"


def _median_request(client: Any, path: str, count: int) -> float:
    client.get(path)  # warm-up: template loading, first queries
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
    return statistics.median(times)


def _measure(total: int, requests: int) -> list[dict[str, Any]]:
    from django.test import Client

    from coderadmin.models import User
    from environments.models import Environment

    Environment.objects.all().delete()
    members, _image = _support.seed_environments(total, max(1, total // 10), prefix=f"p{total}x")
    admin = User.objects.create_user(username=f"admin{total}", is_superuser=True, password=None)
    vendor = _support.database_vendor()
    rows = []
    for who, user in (("site admin, all", admin), ("member, own 10", members[0])):
        client = Client()
        client.force_login(user)
        median = _median_request(client, PATH, requests)
        rows.append(
            row(
                f"list page at {total} environments ({who}, {vendor}, median of {requests})", ms(median), "ms"
            )
        )
    Environment.objects.all().delete()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The list page at each size (50 and 200 environments with ``quick``)."""
    _support.setup_django()
    sizes, requests = ((50, 200), 3) if quick else ((1_000, 10_000), 20)
    rows = []
    for total in sizes:
        rows += _measure(total, requests)
    return rows
