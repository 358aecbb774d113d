"""The entrypoint ships alone in the supervisor image: it must import only the standard library
and its own package. Proven in an isolated interpreter (-I -S: no site-packages, no PYTHONPATH)
whose path holds nothing but the files the Dockerfile copies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from infrastructure.supervisor import contract

ROOT = Path(__file__).resolve().parents[3]


def shipped_tree(tmp_path: Path) -> Path:
    target = tmp_path / "opt"
    (target / "infrastructure/supervisor").mkdir(parents=True)
    shutil.copy(ROOT / "infrastructure/__init__.py", target / "infrastructure/__init__.py")
    for path in (ROOT / "infrastructure/supervisor").glob("*.py"):
        shutil.copy(path, target / "infrastructure/supervisor" / path.name)
    return target


def isolated(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    tree = shipped_tree(tmp_path)
    prelude = f"import sys; sys.path[:0] = [{str(tree)!r}]\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code], capture_output=True, text=True, cwd=tmp_path
    )


def test_entrypoint_imports_only_the_standard_library(tmp_path: Path):
    done = isolated(
        tmp_path,
        "import infrastructure.supervisor.entrypoint\n"
        "names = {name.split('.')[0] for name in sys.modules} - {'__main__'}\n"
        "print(sorted(names - set(sys.stdlib_module_names) - set(sys.builtin_module_names)))\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['infrastructure']"


def test_entrypoint_main_runs_isolated_and_rejects_empty_config(tmp_path: Path):
    log = tmp_path / "termination-log"
    done = isolated(
        tmp_path,
        "from infrastructure.supervisor import entrypoint\n"
        f"sys.exit(entrypoint.main(environ={{}}, termination_log={str(log)!r}))\n",
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stdout.splitlines()
    assert json.loads(line)["type"] == "error"
    parsed = contract.parse_log_line(line)
    assert parsed is not None
    assert parsed.output == log.read_text()
    assert all(name in parsed.output for name in contract.REQUIRED_ENV)
