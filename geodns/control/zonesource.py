"""Where the zones come from, and whether any file there changed since the last look."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geodns.zones.loader import load_zones
from geodns.zones.model import ZoneSet

Signature = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class ZoneSource:
    path: Path  # a directory of zone files, or one file

    def load(self) -> ZoneSet:
        """Every zone, validated whole; ConfigErrors (file:line) when anything is wrong."""
        return load_zones([self.path])

    def signature(self) -> Signature:
        """(file, inode, size, mtime) of every file under the path: any edit, new file,
        removal or rename-over (as editors and ConfigMap updates do) changes it."""
        files: list[Path] = []
        if self.path.is_dir():
            for root, dirs, names in os.walk(self.path, followlinks=True):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                files += [Path(root, n) for n in names if not n.startswith(".")]
        else:
            files.append(self.path)
        out = []
        for file in sorted(files):
            try:
                st = file.stat()
            except OSError:
                continue  # removed while we looked: the next look sees the change
            out.append((str(file), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)
