"""The ``/version`` answer of the simulated cluster and the marker the product checks."""

from __future__ import annotations

from typing import Any

SIMULATED_PLATFORM_PREFIX = "simulated/"
GIT_VERSION = "v1.31.4+simulated"


def version_info() -> dict[str, Any]:
    """What ``GET /version`` returns: a v1.31 server whose platform names it as simulated."""
    return {
        "major": "1",
        "minor": "31",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.10",
        "compiler": "gc",
        "platform": f"{SIMULATED_PLATFORM_PREFIX}linux/amd64",
    }


def is_simulated(info: dict[str, Any]) -> bool:
    """True when a ``/version`` answer comes from this simulator (the UI then says "Simulated cluster")."""
    return str(info.get("platform", "")).startswith(SIMULATED_PLATFORM_PREFIX)
