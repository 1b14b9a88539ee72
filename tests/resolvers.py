"""A real resolver in front of geodns: Unbound on loopback with its ECS cache (subnetcache),
and a GeoIP database that places loopback addresses in countries, so that a test's clients
and resolvers can be in different jurisdictions without leaving 127.0.0.0/8.

Addresses (tests/e2e/test_behind_unbound.py, tests/e2e/test_ecs_zero.py):

    127.0.0.1   the resolver's own address: its queries to geodns come from it; the
                database places it in the US, or nowhere (`resolver_country`)
    127.0.0.2   GB  } resolvers asking geodns directly (ECS /0 is answered for the sender)
    127.0.0.3   US  }
    127.0.2.1   GB  } clients of Unbound: Unbound sends their /24 as ECS
    127.0.3.1   US  }   (max-client-subnet-ipv4 24 would merge 127.0.0.2 and 127.0.0.3)
    18.0.0.0/15 US  } one /12 holding two countries, for short ECS source prefixes
    18.2.0.0/16 GB  }
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import REQUIRE_TOOLS
from tests.geo_fixtures import TEST_NETWORKS, _city_record, write_mmdb

RESOLVER = "127.0.0.1"
GB_RESOLVER, US_RESOLVER = "127.0.0.2", "127.0.0.3"
GB_CLIENT, US_CLIENT = "127.0.2.1", "127.0.3.1"
_GB = ("GB", "EU", "ENG", 51.5, -0.13)  # London
_US = ("US", "NA", "WA", 47.6, -122.3)  # Seattle
LOOPBACK_NETWORKS: dict[str, tuple[Any, ...]] = {
    f"{GB_RESOLVER}/32": _GB,
    f"{US_RESOLVER}/32": _US,
    "127.0.2.0/24": _GB,
    "127.0.3.0/24": _US,
    "18.0.0.0/15": _US,
    "18.2.0.0/16": _GB,
}
_COUNTRIES = {"GB": _GB, "US": _US}
# Unbound's log, as much as a failing test shows of it.
LOG_TAIL_LINES = 80


def write_loopback_mmdb(path: str | os.PathLike[str], resolver_country: str | None = None) -> Path:
    """tests/geo_fixtures.TEST_NETWORKS plus the loopback placements above; the resolver's
    own address 127.0.0.1 is in `resolver_country` ("GB", "US"), or in no network."""
    records = {net: _city_record(*fields) for net, fields in TEST_NETWORKS.items()}
    records.update({net: _city_record(*fields) for net, fields in LOOPBACK_NETWORKS.items()})
    if resolver_country is not None:
        records[f"{RESOLVER}/32"] = _city_record(*_COUNTRIES[resolver_country])
    return write_mmdb(path, records)


def require_unbound() -> str:
    """The path of an Unbound built with the subnetcache module; skipped when missing,
    failed with GEODNS_REQUIRE_TOOLS=1 (CI), as tests/conftest.require_tool does."""
    path = shutil.which("unbound") or next(
        (p for p in ("/usr/sbin/unbound", "/usr/local/sbin/unbound") if os.access(p, os.X_OK)),
        None,
    )
    reason = None
    if path is None:
        reason = "unbound not installed (apt-get install unbound)"
    else:
        version = subprocess.run([path, "-V"], capture_output=True, text=True).stdout
        if "subnetcache" not in version:
            reason = f"{path} was built without the subnetcache module (--enable-subnet)"
    if reason is not None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason}; it is required (GEODNS_REQUIRE_TOOLS=1)")
        pytest.skip(f"{reason}: the tests behind a real resolver need it")
    return path


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host` (Unbound listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def unbound_config(
    directory: Path, port: int, upstream: tuple[str, int], zone: str, verbosity: int
) -> str:
    """Unbound as an ECS-enabled resolver would run it, with `zone` stubbed to geodns."""
    host, upstream_port = upstream
    return f"""\
server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip6: yes
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    logfile: "{directory}/unbound.log"
    use-syslog: no
    log-time-ascii: yes
    # 4: subnetcache's "query/answer/reply has edns subnet" lines and the iterator's work.
    verbosity: {verbosity}
    log-queries: yes
    log-replies: yes
    num-threads: 1
    # geodns is on loopback, which Unbound refuses to query by default.
    do-not-query-localhost: no
    # subnetcache: the RFC 7871 cache (answers kept per client subnet, by scope). No
    # validator: the stub zone is unsigned and there is no root key to fetch.
    module-config: "subnetcache iterator"
    send-client-subnet: {host}
    client-subnet-always-forward: yes
    max-client-subnet-ipv4: 24
    max-client-subnet-ipv6: 56
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    # Answered by Unbound itself: how the harness knows it is up without asking geodns.
    local-zone: "harness.test." static
    local-data: "ready.harness.test. 0 IN A 127.0.0.1"
remote-control:
    control-enable: no
stub-zone:
    name: "{zone}"
    stub-addr: {host}@{upstream_port}
"""


@dataclass
class Resolver:
    """A running Unbound: where it listens and what it logged."""

    proc: subprocess.Popen[bytes]
    port: int
    directory: Path
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.directory / "unbound.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def mark(self) -> int:
        """A position in the log; `log_since(mark)` is what was logged after it."""
        return len(self.log())

    def log_since(self, mark: int) -> str:
        return self.log()[mark:]

    def ask(
        self,
        name: str,
        rdtype: str = "A",
        source: str = RESOLVER,
        subnet: str | None = None,
        timeout: float = 5.0,
    ) -> dns.message.Message:
        """A stub's query from `source`, with an ECS option of its own when `subnet` is
        given ("81.2.69.0/24"); Unbound forwards it (client-subnet-always-forward)."""
        options = []
        if subnet is not None:
            address, prefix = subnet.split("/")
            options.append(dns.edns.ECSOption(address, int(prefix)))
        query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
        return dns.query.udp(query, self.host, port=self.port, timeout=timeout, source=source)


@contextlib.contextmanager
def running_unbound(
    upstream: tuple[str, int],
    zone: str = "example.com",
    verbosity: int = 4,
    startup_timeout: float = 10.0,
) -> Iterator[Resolver]:
    """Start Unbound on 127.0.0.1 (a free port) with `zone` stubbed to `upstream`, geodns's
    (host, port); yield once it answers, stop it at exit. An exception raised inside the
    block gets the tail of Unbound's log attached as a note."""
    binary = require_unbound()
    directory = Path(tempfile.mkdtemp(prefix="geodns-unbound-"))
    try:
        with _started(binary, directory, upstream, zone, verbosity, startup_timeout) as resolver:
            try:
                yield resolver
            except BaseException as exc:
                tail = resolver.log_tail()
                exc.add_note(f"unbound log ({resolver.log_path}), last lines:\n{tail}")
                raise
    finally:
        if os.environ.get("GEODNS_KEEP_UNBOUND") != "1":
            shutil.rmtree(directory, ignore_errors=True)


class _Exited(RuntimeError):
    """Unbound exited while starting (another process may have taken its port)."""


@contextlib.contextmanager
def _started(
    binary: str,
    directory: Path,
    upstream: tuple[str, int],
    zone: str,
    verbosity: int,
    startup_timeout: float,
    attempts: int = 3,
) -> Iterator[Resolver]:
    config = directory / "unbound.conf"
    for attempt in range(attempts):
        port = _free_port("127.0.0.1")
        config.write_text(unbound_config(directory, port, upstream, zone, verbosity))
        with open(directory / "stderr", "wb") as stderr:
            proc = subprocess.Popen(
                [binary, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=directory,
            )
        resolver = Resolver(proc, port, directory)
        try:
            try:
                _wait_until_answering(resolver, startup_timeout)
            except _Exited:
                if attempt + 1 == attempts:
                    raise
                continue
            yield resolver
            return
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_answering(resolver: Resolver, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    query = dns.message.make_query("ready.harness.test", "A")
    while True:
        if resolver.proc.poll() is not None:
            stderr = (resolver.directory / "stderr").read_text(errors="replace")
            raise _Exited(
                f"unbound exited with {resolver.proc.returncode}:\n{stderr}\n{resolver.log_tail()}"
            )
        try:
            reply = dns.query.udp(query, resolver.host, port=resolver.port, timeout=0.2)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return
        except (dns.exception.Timeout, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"unbound did not answer within {timeout} s:\n{resolver.log_tail()}")
        time.sleep(0.05)
