"""State files replaced in one step, and the temp files a kill -9 mid-write leaves behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from geodns.atomicfile import remove_stale_temps, write_atomically
from geodns.store.local import FILE_NAME, LocalStore
from tests.conftest import ROOT

# A writer that stops between writing its temp file and renaming it, as a kill -9 finds it.
STALLED_WRITER = """
import os, sys, time
os.replace = lambda src, dst: (print("written", flush=True), time.sleep(60))
from pathlib import Path
from geodns.atomicfile import write_atomically
write_atomically(Path(sys.argv[1]), b'{"format": 1, "revision": 0, "keys": {}}')
"""


def test_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_writer_killed_mid_write_leaves_a_temp_file_that_start_removes(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    write_atomically(path, b'{"format": 1, "revision": 0, "keys": {}}')
    before = path.read_bytes()
    for _ in range(2):  # each kill leaves one more
        writer = subprocess.Popen(
            [sys.executable, "-c", STALLED_WRITER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    temps = sorted(p.name for p in tmp_path.iterdir() if p.name != FILE_NAME)
    assert len(temps) == 2 and all(t.endswith(".tmp") for t in temps), temps
    assert path.read_bytes() == before  # the file itself is whole: old or new, never half

    removed = remove_stale_temps(path)
    assert sorted(p.name for p in removed) == temps
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]


def test_only_the_files_own_temp_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    mine = tmp_path / ".state.json.abc123.tmp"
    others = [
        tmp_path / ".other.json.abc123.tmp",  # another file's
        tmp_path / ".state.json.abc123.bak",  # not a temp name
        tmp_path / "state.json.abc123.tmp",  # not the dotfile mkstemp makes
        tmp_path / ".state.json..tmp",  # nothing random: not one of ours
    ]
    for p in [mine, *others]:
        p.write_text("x")
    (tmp_path / ".state.json.dir.tmp").mkdir()  # a directory is never removed
    assert remove_stale_temps(path) == [mine]
    assert all(p.exists() for p in others)
    assert (tmp_path / ".state.json.dir.tmp").is_dir()


def test_no_directory_yet_is_nothing_to_remove(tmp_path: Path) -> None:
    assert remove_stale_temps(tmp_path / "missing" / "state.json") == []


def test_a_failed_write_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        write_atomically(path, b"x")
    assert list(tmp_path.iterdir()) == []


def test_the_embedded_store_cleans_its_own_temp_files_when_opened(tmp_path: Path) -> None:
    stale = tmp_path / "..geodns-state.json.k3j2h1.tmp"
    stale.write_text("{")
    asyncio.run(LocalStore(tmp_path / FILE_NAME).open())
    assert not stale.exists()
