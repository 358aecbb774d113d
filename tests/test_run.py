"""bin/run, the one command that runs the whole product: it serves, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Variables of the test run that must not reach bin/run: it is checked on the embedded defaults.
NOT_PASSED = {
    "DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "ALLOW_SIMULATED_CLUSTER",
    "SECURE_SSL_REDIRECT", "STATIC_MANIFEST", "CODERADMIN_VAR_DIR", "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE", "KUBECONFIG", "PORT",
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), fields[19])
    return found


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every process below ``root`` (the start time tells a reused pid apart)."""
    table = _processes()
    result: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in result:
                result[pid] = started
                frontier.append(pid)
    return result


def _alive(pid: int, started: str) -> bool:
    now = _processes().get(pid)
    return now is not None and now[1] == started


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_run_serves_the_product_and_ctrl_c_stops_every_process(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    env.update(PORT=str(port), SIMULATOR_PORT=str(_free_port()), CODERADMIN_VAR_DIR=str(tmp_path / "var"))
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [str(ROOT / "bin" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 180
        ready = None
        while time.monotonic() < deadline and run.poll() is None:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    ready = _get(f"http://127.0.0.1:{port}/readyz")
                    if ready[0] == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        output = (tmp_path / "run.log").read_text()
        assert ready is not None and ready[0] == 200, output
        assert json.loads(ready[1])["checks"] == {"database": "ok", "broker": "ok"}
        time.sleep(2)  # let the worker and beat finish starting their own children
        children = _descendants(run.pid)
        commands = " | ".join(_cmdline(pid) for pid in children)
        for part in ("gunicorn", "celery -A coderadmin worker", "manage.py run_beat"):
            assert part in commands
        beat_deadline = time.monotonic() + 30  # run_beat starts beat once it holds the Lease
        while "celery -A coderadmin beat" not in commands and time.monotonic() < beat_deadline:
            time.sleep(0.5)
            children = _descendants(run.pid)
            commands = " | ".join(_cmdline(pid) for pid in children)
        assert "celery -A coderadmin beat" in commands
        assert f"http://127.0.0.1:{port}/" in output
        assert "admin    password: " in output and "member   password: " in output
        login_page = _get(f"http://127.0.0.1:{port}/accounts/login/")
        assert login_page[0] == 200 and b"/static/css/app.css" in login_page[1]
        assert _get(f"http://127.0.0.1:{port}/static/css/app.css")[0] == 200

        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) != 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in children.items()):
            time.sleep(0.1)
        left = [_cmdline(p) for p, s in children.items() if _alive(p, s)]
        assert left == []
    finally:
        if run.poll() is None:
            run.kill()
        for pid, started in children.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        log.close()
