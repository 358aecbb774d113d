"""``python -m bench``: run every ``run() -> list[dict]`` found in the bench package and print one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
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


def main() -> int:
    rows: list[dict[str, Any]] = []
    for name, run in collect():
        started = time.perf_counter()
        for row in run():
            rows.append({"module": name, **row})
        print(f"{name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
