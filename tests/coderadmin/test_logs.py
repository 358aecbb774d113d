"""LOG_FORMAT=json writes one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys

from coderadmin.logs import JsonFormatter


def test_json_lines_carry_level_logger_message_and_exception():
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "coderadmin.x", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "coderadmin.x", "failed once")
    assert "ValueError: bad" in entry["exception"]
    assert entry["time"].endswith("+00:00")
