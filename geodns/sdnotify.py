"""Tell systemd (a Type=notify unit) that the server is ready, reloading or stopping.

The protocol (sd_notify(3)) is one datagram of newline-separated KEY=VALUE lines sent to
the unix socket named by $NOTIFY_SOCKET; a name starting with "@" is in the abstract
namespace. Written here rather than taken from a package: `systemd-python` and `cysystemd`
need libsystemd's headers and a compiler at install, and `sdnotify` (pure Python) has had no
release since 2017; the protocol is the dozen lines below.

Without $NOTIFY_SOCKET (not under systemd, or Type=simple) every call does nothing. A
notification that cannot be sent is logged, never raised: systemd's start timeout, not a
crashed server, is what an operator should then see.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("geodns.sdnotify")

ENV = "NOTIFY_SOCKET"


def notify(*fields: str) -> bool:
    """Send fields such as "READY=1" to systemd; whether a datagram was sent."""
    address = os.environ.get(ENV)
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        log.warning("%s=%r is neither a path nor an abstract name: not notified", ENV, address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", os.environ.get(ENV), exc)
        return False
    return True


def ready(status: str) -> bool:
    """Serving: the first start is done, or a reload is over (whatever its outcome)."""
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    """A reload begins; systemd waits for the next READY=1. MONOTONIC_USEC lets systemd 253+
    (Type=notify-reload) tell this reload from an older one."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the zones")


def stopping() -> bool:
    return notify("STOPPING=1", "STATUS=shutting down")
