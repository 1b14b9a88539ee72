"""How the `geodns` command ends when its reader goes away (`geodns ... | head`)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

# What a shell reports for a command killed by SIGPIPE (128 + 13), as `yes | head` shows: a
# script with `set -o pipefail` tells "the reader stopped early" from a real failure (1, 2).
EXIT_BROKEN_PIPE = 141


def quiet_on_broken_pipe(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a CLI entry point so that a closed stdout ends it with EXIT_BROKEN_PIPE, silently.

    Python ignores SIGPIPE, so a write to a pipe whose reader is gone raises BrokenPipeError,
    from any print of any subcommand, or at exit when the buffer is flushed. As the Python
    docs recommend (library/signal.html, "Note on SIGPIPE"), stdout is then pointed at
    /dev/null so that the interpreter's own flush at exit does not raise again.
    """

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> int:
        try:
            try:
                code = main(*args, **kwargs)
            finally:
                # Here, not at exit where it could not be caught; after --help's SystemExit too.
                sys.stdout.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return EXIT_BROKEN_PIPE
        return code

    return wrapper
