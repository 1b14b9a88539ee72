"""Without ./zones, `check` checks what `serve` serves (the embedded example), and both say so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

NOTE = "no ./zones directory: using the embedded example zone from "


def env() -> dict[str, str]:
    # The working directory has no ./zones, so this checkout goes on the path by name.
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_check_and_serve_agree_without_a_zones_directory(tmp_path: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "geodns", "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env(),
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert NOTE in checked.stderr
    assert checked.stdout.startswith(str(ROOT / "geodns" / "example" / "example.com.yaml"))
    assert ": zone example.com. ok (" in checked.stdout

    cmd = [sys.executable, "-m", "geodns", "serve", "--listen", "127.0.0.1:0", "--http", "off"]
    cmd += ["--scope-cache", "off", "--state-dir", str(tmp_path), "--watch-interval", "0"]
    serve = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert serve.stderr is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = serve.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "loaded zone" in line:
                break
        said = [line for line in seen if NOTE in line]
        assert said, "".join(seen)
        # The same words, naming the same zone file's directory.
        assert (
            said[0].split(NOTE)[1]
            == next(line for line in checked.stderr.splitlines() if NOTE in line).split(NOTE)[1]
            + "\n"
        )
        assert any("loaded zone example.com." in line for line in seen)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
