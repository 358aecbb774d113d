"""The simulated clock: durations scaled, timestamps real."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infrastructure.simulator.clock import SCALE_VARIABLE, Clock


def test_scales_durations():
    assert Clock.realistic().real_seconds(3) == 3
    assert Clock.fast().real_seconds(10) == pytest.approx(0.02)
    assert Clock(0.5).real_seconds(-1) == 0


def test_timestamps_are_real_rfc3339():
    assert Clock.fast().timestamp(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert abs((Clock.fast().now() - datetime.now(UTC)).total_seconds()) < 1


def test_negative_scale_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        Clock(-1)


def test_scale_from_the_environment(monkeypatch):
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    assert Clock.from_environment().scale == 1.0
    monkeypatch.setenv(SCALE_VARIABLE, "0.1")
    assert Clock.from_environment().scale == 0.1
    monkeypatch.setenv(SCALE_VARIABLE, "fast")
    with pytest.raises(ValueError, match=SCALE_VARIABLE):
        Clock.from_environment()
