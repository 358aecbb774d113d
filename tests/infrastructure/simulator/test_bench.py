"""The benchmark runner and the simulator benchmark (at a reduced size, so the test stays quick)."""

from __future__ import annotations

import bench.__main__ as runner
from bench import simulator


def test_runner_finds_modules_with_run():
    names = [name for name, _ in runner.collect()]
    assert "simulator" in names


def test_table_aligns_columns_from_all_rows():
    text = runner.table([{"a": "1", "b": "long value"}, {"a": "22", "c": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c"]
    assert lines[2].startswith("1 ")
    assert len({len(line.rstrip()) <= len(lines[1]) for line in lines}) == 1


def test_simulator_benchmark_rows(monkeypatch):
    monkeypatch.setattr(simulator, "_REQUESTS", 10)
    monkeypatch.setattr(simulator, "_PODS", 300)
    monkeypatch.setattr(simulator, "_WATCHERS", 3)
    monkeypatch.setattr(simulator, "_WATCH_EVENTS", 3)
    rows = simulator.run()
    assert {row["unit"] for row in rows} == {"req/s", "ms"}
    assert all(row["value"] > 0 for row in rows)
    assert any("list 300 pods" in row["benchmark"] for row in rows)
    assert any("watch fan-out to 3 watchers (9 deliveries)" in row["benchmark"] for row in rows)
