"""The simulated cluster's clock: how long simulated work (pulls, starts, graceful stops) really takes.

Profiles and the simulated supervisor state durations in cluster seconds, as a real cluster would
take them. The clock turns them into wall-clock seconds: unchanged in the demo, so a newcomer sees
an environment build at a believable pace, and scaled down in tests, so a ten-attempt image pull
takes milliseconds. Timestamps written into objects are always the real time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

REALISTIC_SCALE = 1.0
FAST_SCALE = 0.002
# Lets a demo run faster (0.1) or slower than life without code changes.
SCALE_VARIABLE = "SIMULATOR_CLOCK_SCALE"


class Clock:
    """Scales simulated durations; ``scale`` is real seconds per simulated second."""

    def __init__(self, scale: float = REALISTIC_SCALE) -> None:
        if scale < 0:
            raise ValueError("clock scale must not be negative")
        self.scale = scale

    @classmethod
    def realistic(cls) -> Clock:
        return cls(REALISTIC_SCALE)

    @classmethod
    def fast(cls) -> Clock:
        return cls(FAST_SCALE)

    @classmethod
    def from_environment(cls) -> Clock:
        """Realistic unless ``SIMULATOR_CLOCK_SCALE`` says otherwise."""
        value = os.environ.get(SCALE_VARIABLE, "").strip()
        if not value:
            return cls.realistic()
        try:
            return cls(float(value))
        except ValueError:
            raise ValueError(f"{SCALE_VARIABLE} must be a non-negative number, not {value!r}") from None

    def real_seconds(self, simulated_seconds: float) -> float:
        """Wall-clock seconds for a duration stated in simulated seconds."""
        return max(0.0, simulated_seconds) * self.scale

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self, when: datetime | None = None) -> str:
        """RFC 3339 with second precision and a ``Z``, as Kubernetes writes metav1.Time."""
        return (when or self.now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def __repr__(self) -> str:
        return f"Clock(scale={self.scale})"
