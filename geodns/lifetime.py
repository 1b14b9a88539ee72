"""Child processes that must not outlive the server that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (kill -9
    included). Linux only; elsewhere a no-op.

    `parent`: the pid the parent had. A parent that died before this call (while the
    child was still importing) sends no signal, so the child exits here instead.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        raise SystemExit(1)


def name_process(name: str) -> None:
    """What `ps -o comm`, `top` and /proc/PID/comm show for this process (15 bytes at
    most): a forked copy of the server is told from the server by it. Linux only."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_NAME, name.encode()[:15])
