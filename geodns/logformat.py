"""Log line formats: text (one line per event) and JSON (one object per line, stable keys).

The JSON format is a stdlib Formatter rather than python-json-logger: what it has to do
(fixed keys, RFC 3339 UTC time, the `extra=` fields, the traceback as a string) is about
thirty lines, and the library's renaming and reserved-field options would take as many
to configure. Every line the process writes goes through the root logger's one handler,
aiohttp's access log included, so a collector parses one shape.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
# What every LogRecord carries; any other attribute came from `extra=` and is a field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# Keys a JSON line always has, in this order; a field of `extra=` never replaces them.
BASE_KEYS = ("ts", "level", "logger", "msg")


class OneLineFormatter(logging.Formatter):
    """One line per event, tracebacks included, so that log collectors never split one."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC, milliseconds), level, logger, msg, the
    fields passed with `extra=`, and exc_info / stack_info as strings when present."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a field of a type JSON lacks (an address, a path) is written as text
        # rather than losing the whole line.
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Send every logger's records to stderr, one line each, in `fmt` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            OneLineFormatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
