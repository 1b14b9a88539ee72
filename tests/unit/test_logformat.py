"""The JSON log format: one object per line, stable keys, extra fields, tracebacks."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import sys

import pytest

from geodns.logformat import BASE_KEYS, JsonFormatter, OneLineFormatter, setup_logging


def record(**kwargs: object) -> logging.LogRecord:
    logger = logging.getLogger("geodns.test")
    rec = logger.makeRecord(
        "geodns.test", logging.WARNING, __file__, 1, "region %s is %s", ("eu", "down"), None
    )
    rec.created = 1_700_000_000.25
    for key, value in kwargs.items():
        setattr(rec, key, value)
    return rec


def test_a_line_has_the_stable_keys_first_and_the_extra_fields() -> None:
    line = JsonFormatter().format(record(region="eu-west-1", regions=["a", "b"]))
    assert "\n" not in line
    out = json.loads(line)
    assert tuple(out)[:4] == BASE_KEYS
    assert out["ts"] == "2023-11-14T22:13:20.250Z"  # RFC 3339, UTC
    assert out["level"] == "WARNING"
    assert out["logger"] == "geodns.test"
    assert out["msg"] == "region eu is down"
    assert out["region"] == "eu-west-1" and out["regions"] == ["a", "b"]
    # Nothing of the LogRecord's own attributes leaks in.
    assert set(out) == {*BASE_KEYS, "region", "regions"}


def test_an_exception_is_one_string_field() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["exc_info"].startswith("Traceback")
    assert "ValueError: bad\nthing" in out["exc_info"]


def test_a_field_json_cannot_hold_is_written_as_text() -> None:
    out = json.loads(JsonFormatter().format(record(client=ipaddress.ip_address("192.0.2.1"))))
    assert out["client"] == "192.0.2.1"


def test_text_stays_one_line() -> None:
    try:
        raise RuntimeError("x")
    except RuntimeError:
        rec = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    assert "\n" not in OneLineFormatter("%(message)s").format(rec)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_setup_sends_every_logger_through_one_handler(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", fmt)
        logging.getLogger("aiohttp.access").info("GET / 200", extra={"response_status": 200})
        logging.getLogger("geodns.x").debug("hidden")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if fmt == "json":
        out = json.loads(lines[0])
        assert out["logger"] == "aiohttp.access" and out["response_status"] == 200
    else:
        assert "INFO aiohttp.access: GET / 200" in lines[0]
