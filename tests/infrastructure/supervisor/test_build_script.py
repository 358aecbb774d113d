"""build.sh: the tag it computes and its refusal without a Docker engine.

The `docker` it calls is a stub script on PATH (a true boundary: no engine here) that records
its arguments and the build context it was given.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "infrastructure/supervisor/build.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def stub_docker(tmp_path: Path, *, engine: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stub = bin_dir / "docker"
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = info ]; then exit {0 if engine else 1}; fi\n'
        'if [ "$1" = build ]; then for last; do :; done; '
        f'(cd "$last" && find . -type f | sort) > {tmp_path / "context"}; fi\n'
    )
    stub.chmod(0o755)
    return bin_dir


def run(
    tmp_path: Path, bin_dir: Path, *args: str, prefix: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if prefix is not None:
        env["SUPERVISOR_IMAGE_PREFIX"] = prefix
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False)


def test_refuses_without_a_docker_engine(tmp_path: Path):
    done = run(tmp_path, stub_docker(tmp_path, engine=False))
    assert done.returncode == 2
    assert done.stderr == (
        "build.sh: no Docker engine is reachable (docker info failed); "
        f"building ghcr.io/coderadmin/coderadmin-supervisor:{VERSION} needs one\n"
    )
    assert (tmp_path / "calls").read_text() == "info\n"


def test_refuses_without_docker_command(tmp_path: Path):
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("awk", "dirname"):
        found = shutil.which(tool)
        assert found
        (tools / tool).symlink_to(found)
    env = {"PATH": str(tools), "HOME": str(tmp_path)}
    done = subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr == (
        "build.sh: the docker command is not installed; "
        f"building ghcr.io/coderadmin/coderadmin-supervisor:{VERSION} needs a Docker engine\n"
    )


def test_builds_with_the_product_version_and_minimal_context(tmp_path: Path):
    done = run(tmp_path, stub_docker(tmp_path, engine=True), "--push", "--pull", prefix="registry.test/team/")
    assert done.returncode == 0, done.stderr
    tag = f"registry.test/team/coderadmin-supervisor:{VERSION}"
    assert done.stdout.splitlines()[-1] == tag
    info, build, push = (tmp_path / "calls").read_text().splitlines()
    assert info == "info"
    assert build.startswith(f"build --build-arg VERSION={VERSION} --tag {tag} --pull /")
    assert push == f"push {tag}"
    shipped = sorted(path.name for path in (ROOT / "infrastructure/supervisor").glob("*.py"))
    assert (tmp_path / "context").read_text().splitlines() == sorted(
        ["./Dockerfile", "./infrastructure/__init__.py"]
        + [f"./infrastructure/supervisor/{name}" for name in shipped]
    )


def test_default_prefix_without_push(tmp_path: Path):
    done = run(tmp_path, stub_docker(tmp_path, engine=True))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"ghcr.io/coderadmin/coderadmin-supervisor:{VERSION}"
    assert [line.split()[0] for line in (tmp_path / "calls").read_text().splitlines()] == ["info", "build"]
