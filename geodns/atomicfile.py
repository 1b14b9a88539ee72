"""Small state files replaced in one step (temp file, fsync, rename), and the temp files a
killed writer leaves behind.

A writer killed between creating its temp file and renaming it (kill -9, power loss)
leaves `.<name>.<random>.tmp` beside the file; `remove_stale_temps()` at start removes
them. One server owns each state file: a second server writing the same file at the same
moment could lose its temp file to the first one's start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("geodns")

TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    # A dotfile: the zone watcher ignores dotfiles, so a write is never taken for a zone edit.
    return f".{path.name}."


def read_json_document(path: Path, format_version: int) -> dict[str, Any] | None:
    """The JSON object in `path` written in `format_version`, or None when there is no
    file; ValueError names the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: must be a JSON object")
    if doc.get("format") != format_version:
        raise ValueError(
            f"{path}: format {doc.get('format')!r} is not {format_version}"
            " (written by another geodns version?)"
        )
    return doc


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a crash leaves the old file or the new, never half.

    Raises OSError (the temp file removed) when it cannot.
    """
    directory = path.parent
    # Same directory: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files that killed writers of `path` left behind; those removed.

    Only names `write_atomically` makes for this very file are touched.
    """
    prefix = _temp_prefix(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []  # no directory yet: nothing was ever written there
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        if len(name) <= len(prefix) + len(TEMP_SUFFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError as exc:
            log.warning("cannot remove %s, left by an interrupted write: %s", name, exc.strerror)
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info(
            "removed %d temp file(s) of %s left by an interrupted write", len(removed), path.name
        )
    return removed


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
