"""The benchmarks keep working: ``python -m bench --quick`` runs every module at a small size and
prints one table with rows from each. No timing is asserted; only that each benchmark ran, reported
what it measures, built no environment twice and saw no load-test errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import _support

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("loadtest", "pages", "provisioning", "reconciler", "simulator", "watcher")


@pytest.fixture(scope="module")
def quick_run() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def rows_of(output: str) -> list[list[str]]:
    """The table's body rows split on two or more spaces."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("module")) + 2
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start:] if line.strip()]


def test_every_module_is_collected():
    assert tuple(name for name, _ in bench_main.collect()) == MODULES


def test_quick_run_reports_every_module(quick_run):
    modules = {cells[0] for cells in rows_of(quick_run)}
    assert modules == set(MODULES)
    assert "CPUs" in quick_run.splitlines()[0]


def test_quick_run_builds_no_environment_twice_and_load_has_no_errors(quick_run):
    rows = rows_of(quick_run)
    assert len([cells for cells in rows if "reached Running exactly once" in cells[1]]) == 2
    twice = [cells for cells in rows if "reached Running more than once" in cells[1]]
    assert len(twice) == 2
    assert all(cells[2] == "0" for cells in twice)
    load_errors = [cells for cells in rows if cells[0] == "loadtest" and cells[1].endswith("errors")]
    assert len(load_errors) == 2
    assert all(cells[2].startswith("0 of ") for cells in load_errors)


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert _support.percentile(values, 0.5) == 50.0
    assert _support.percentile(values, 0.95) == 95.0
    assert _support.percentile(values, 0.99) == 99.0
    assert _support.percentile([3.0], 0.95) == 3.0


def test_table_aligns_the_union_of_columns():
    text = bench_main.table([{"a": 1, "b": "x"}, {"a": 22, "c": "y"}])
    assert text.splitlines() == ["a   b  c", "--  -  -", "1   x   ", "22     y"]


def test_only_accepts_known_modules():
    assert bench_main.parse(["--only", "pages", "--quick"], list(MODULES)).only == ["pages"]
    with pytest.raises(SystemExit):
        bench_main.parse(["--only", "nosuch"], list(MODULES))


def test_call_passes_quick_only_to_runs_that_take_it():
    assert bench_main.call(lambda quick=False: [{"quick": quick}], True) == [{"quick": True}]
    assert bench_main.call(lambda: [{"plain": 1}], True) == [{"plain": 1}]


def test_with_database_replaces_only_the_name():
    url = "postgres://u:p@127.0.0.1:5432/main?sslmode=disable"
    assert _support.with_database(url, "other") == "postgres://u:p@127.0.0.1:5432/other?sslmode=disable"


def test_a_failing_benchmark_is_reported_without_hiding_the_others(monkeypatch, capsys):
    def broken() -> list[dict]:
        raise RuntimeError("cluster on fire")

    def fine(quick: bool = False) -> list[dict]:
        return [{"benchmark": "fine", "value": 1 if quick else 2}]

    monkeypatch.setattr(bench_main, "collect", lambda: [("broken", broken), ("fine", fine)])
    assert bench_main.main(["--quick"]) == 1
    rows = rows_of(capsys.readouterr().out)
    assert rows == [["broken", "FAILED: RuntimeError: cluster on fire"], ["fine", "fine", "1"]]


def test_only_runs_the_named_modules(monkeypatch, capsys):
    def never() -> list[dict]:
        raise AssertionError("not asked for")

    monkeypatch.setattr(
        bench_main, "collect", lambda: [("a", never), ("b", lambda: [{"benchmark": "b", "value": 3}])]
    )
    assert bench_main.main(["--only", "b"]) == 0
    assert rows_of(capsys.readouterr().out) == [["b", "b", "3"]]
