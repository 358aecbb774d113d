"""``python -m bench``: run every ``run() -> list[dict]`` found in the bench package and print one table.

``--quick`` runs each benchmark at a small size (a smoke run of a minute or two); ``--only NAME`` (repeatable)
runs the named modules only. Modules whose ``run`` takes a ``quick`` argument get it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import platform
import sys
import time
import traceback
from typing import Any

import bench


def collect() -> list[tuple[str, Any]]:
    """The benchmark modules of this package that expose ``run``."""
    found = []
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found.append((info.name, module.run))
    return found


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table; columns are the union of the rows' keys in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(lines)


def parse(argv: list[str] | None, names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks; print one table."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--only", action="append", choices=names, metavar="NAME", help=f"one of {names}")
    return parser.parse_args(argv)


def machine() -> str:
    """The machine line printed above the table."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {memory:.1f} GiB memory, Python {python}, {platform.system()}, "
        f"load average {load} (1/5/15 min) at the end"
    )


def call(run: Any, quick: bool) -> list[dict[str, Any]]:
    """``run(quick=...)`` when it takes the argument, else ``run()`` (full size either way)."""
    if "quick" in inspect.signature(run).parameters:
        return run(quick=quick)
    return run()


def main(argv: list[str] | None = None) -> int:
    found = collect()
    args = parse(argv, [name for name, _ in found])
    rows: list[dict[str, Any]] = []
    failed = False
    for name, run in found:
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        try:
            rows.extend({"module": name, **row} for row in call(run, args.quick))
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            rows.append({"module": name, "benchmark": f"FAILED: {type(exc).__name__}: {exc}"[:200]})
            failed = True
        print(f"{name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(machine())
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
