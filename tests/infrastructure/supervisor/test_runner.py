"""SystemRunner against real, harmless local commands and files (no Docker involved)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from infrastructure.supervisor.runner import RecordingRunner, SystemRunner


def test_run_merges_output_and_reports_exit_code():
    result = SystemRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.returncode == 3 and not result.ok
    assert sorted(result.output.split()) == ["err", "out"]


def test_run_streams_lines_and_passes_env():
    seen: list[str] = []
    result = SystemRunner().run(
        ["sh", "-c", 'echo "$GREETING"; echo two'], env={"GREETING": "hi"}, on_line=seen.append
    )
    assert result.ok and seen == ["hi", "two"] and result.output == "hi\ntwo\n"


def test_run_reports_missing_program_and_timeout():
    assert SystemRunner().run(["/nonexistent/program"]).returncode == 127
    assert SystemRunner().run(["/nonexistent/program"], on_line=print).returncode == 127
    slow = SystemRunner().run(["sleep", "5"], timeout=0.2)
    assert slow.returncode == 124 and "timed out" in slow.output
    streamed: list[str] = []
    started = time.monotonic()
    slow = SystemRunner().run(["sh", "-c", "echo begun; exec sleep 5"], timeout=0.3, on_line=streamed.append)
    assert slow.returncode == 124 and streamed == ["begun"] and time.monotonic() - started < 4


def test_start_sends_output_to_log_and_terminates(tmp_path: Path):
    log = tmp_path / "logs" / "daemon.log"
    process = SystemRunner().start(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"], log_path=str(log)
    )
    deadline = time.monotonic() + 10
    while "ready" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None
    assert log.read_text() == "ready\n"
    process.terminate()
    assert process.wait(10) is not None


def test_files(tmp_path: Path):
    runner = SystemRunner()
    path = tmp_path / "f"
    assert runner.read_file(str(path)) is None and not runner.exists(str(path))
    runner.write_file(str(path), "x")
    assert runner.read_file(str(path)) == "x" and runner.exists(str(path))
    assert runner.free_bytes(str(tmp_path)) > 0


def test_recording_runner_replies_by_longest_prefix_and_repeats_the_last():
    runner = RecordingRunner()
    runner.reply(["docker"], (5, "generic"))
    runner.reply(["docker", "pull"], (1, "first"), (0, "then"))
    assert runner.run(["docker", "pull", "x"]).output == "first"
    assert runner.run(["docker", "pull", "x"]).output == "then"
    assert runner.run(["docker", "pull", "x"]).output == "then"
    assert runner.run(["docker", "ps"]).returncode == 5
    assert runner.run(["true"]).ok
    assert runner.commands() == [("docker", "pull", "x")] * 3 + [("docker", "ps"), ("true",)]
