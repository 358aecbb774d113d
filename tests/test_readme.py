"""The README promises a two-command quick start and documents every configuration variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_quick_start_is_exactly_two_commands_that_exist():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [
        line for block in re.findall(r"```sh\n(.*?)```", section, re.S) for line in block.splitlines()
    ]
    assert commands == ["bin/run", "bin/test"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK)


def test_configuration_table_covers_env_example():
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    variables = re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    missing = [name for name in variables if f"`{name}`" not in section]
    assert missing == []
