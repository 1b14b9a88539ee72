"""`geodns ... | head`: a reader that stops early ends the command quietly, with status 141."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from geodns.cliout import EXIT_BROKEN_PIPE
from tests.conftest import ROOT


def geodns(*args: str) -> list[str]:
    return [sys.executable, "-m", "geodns", *args]


@pytest.mark.parametrize(
    "args",
    [
        ("explain", "--offline", "--json", "inference.example.com", "192.0.2.1"),
        ("check",),
        ("export", "zones/example.com.yaml"),
    ],
)
def test_a_reader_gone_before_the_first_write(args: tuple[str, ...]) -> None:
    # `geodns ... | head` where head is gone before the first write (a reader gone later makes
    # a write of all the output return short without an error, which Python does not report).
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write fails, whatever the timing
    try:
        result = subprocess.run(
            geodns(*args), stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT, timeout=120
        )
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_BROKEN_PIPE
    assert result.stderr.decode().strip() == ""
