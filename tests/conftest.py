"""Shared fixtures: start the real `geodns serve` on loopback ports and wait until it listens."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests import zoneschema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ZONES = ROOT / "zones"
_LISTENING = re.compile(r"listening on (\[?[0-9a-fA-F:.]+\]?):(\d+)")
_ADMIN = re.compile(r"admin HTTP on (http://[^ ]+/)")
_METRICS = re.compile(r"metrics HTTP on (http://[^ ]+/metrics)")
REQUIRE_TOOLS = os.environ.get("GEODNS_REQUIRE_TOOLS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # Servers the tests start (geodns demo among them) keep merged ECS scopes in a cache
    # of this session's own, not in the user's ~/.cache.
    cache = tempfile.mkdtemp(prefix="geodns-test-cache-")
    os.environ["XDG_CACHE_HOME"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


@pytest.fixture(autouse=True)
def _zones_pass_the_schema() -> Iterator[None]:
    """Every zone a test builds without a loader error passes the generated JSON Schema."""
    with zoneschema.watch_loader() as built:
        yield
    errors = [e for doc in built for e in zoneschema.schema_errors(doc)]
    if errors:
        pytest.fail(
            "the loader accepts a zone the schema rejects (geodns/zones/keys.py):\n"
            + "\n".join(errors)
        )


@dataclass
class ServerProcess:
    """A running `geodns serve` child process and what it printed."""

    proc: subprocess.Popen[str]
    ports: dict[str, int] = field(default_factory=dict)  # "127.0.0.1" / "::1" -> port
    lines: list[str] = field(default_factory=list)
    admin_url: str | None = None  # http://127.0.0.1:PORT/ when the admin side is on
    metrics_url: str | None = None  # http://127.0.0.1:PORT/metrics with --metrics

    @property
    def port(self) -> int:
        return self.ports["127.0.0.1"]

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def log(self) -> str:
        return "\n".join(self.lines)

    def udp(
        self, query: dns.message.Message, host: str = "127.0.0.1", timeout: float = 2.0
    ) -> dns.message.Message:
        return dns.query.udp(
            query, host, port=self.ports[host], timeout=timeout, ignore_unexpected=True
        )

    def tcp(
        self, query: dns.message.Message, host: str = "127.0.0.1", timeout: float = 2.0
    ) -> dns.message.Message:
        return dns.query.tcp(query, host, port=self.ports[host], timeout=timeout)


@contextlib.contextmanager
def running_server(
    zones: Path | str = EXAMPLE_ZONES,
    *args: str,
    listen: tuple[str, ...] = ("127.0.0.1:0", "[::1]:0"),
    startup_timeout: float = 15.0,
    http: str = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    scope_cache: str = "off",
) -> Iterator[ServerProcess]:
    """Start `geodns serve` on loopback port 0 and yield once every address listens.

    Merged ECS scopes are off unless `scope_cache` names a directory: a test asserting
    a scope must know which one it gets, and a build in the background of every server
    would only compete with the tests for the two cores. tests/e2e/test_merged_scopes.py
    runs them; wait_for_scopes() waits for their build.
    """
    mismatches = zoneschema.check_zone_files(zones)
    assert not mismatches, "the loader accepts a zone the schema rejects:\n" + "\n".join(mismatches)
    cmd = [
        sys.executable,
        "-m",
        "geodns",
        "--log-level",
        "debug",
        "serve",
        "--zones",
        str(zones),
        "--server-id",
        "test-ns1",
        "--http",
        http,
    ]
    for addr in listen:
        cmd += ["--listen", addr]
    cmd += list(args)
    if "--scope-cache" not in args:
        cmd += ["--scope-cache", scope_cache]
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
    )
    server = ServerProcess(proc)
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line.rstrip("\n"))
            admin = _ADMIN.search(line)
            if admin:
                server.admin_url = admin.group(1)
            scrape = _METRICS.search(line)
            if scrape:
                server.metrics_url = scrape.group(1)
            m = _LISTENING.search(line)
            if m:
                server.ports[m.group(1).strip("[]")] = int(m.group(2))
                if len(server.ports) == len(listen):
                    ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not ready.wait(startup_timeout) or len(server.ports) != len(listen):
            raise RuntimeError(f"geodns did not start:\n{server.log()}")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def started(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """The port and the admin URL that a `geodns serve` started otherwise than by
    running_server (an installed wheel, the image's command) logs on stderr, read up to
    its first "listening on" line: (port, "http://HOST:PORT/")."""
    assert proc.stderr is not None
    lines: list[str] = []
    port, admin = 0, ""
    for line in proc.stderr:
        lines.append(line)
        if m := _ADMIN.search(line):
            admin = m.group(1)
        if m := _LISTENING.search(line):
            port = int(m.group(2))
            break
    assert port and admin, "".join(lines)
    return port, admin


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The example zone, served for the whole session (tests must not change its state)."""
    with running_server() as srv:
        yield srv


# The Debian package of each tool that require_tool is asked for.
_PACKAGES = {"dig": "bind9-dnsutils", "kdig": "knot-dnsutils", "ss": "iproute2"}


def require_tool(name: str) -> str:
    """The path of a command-line tool; skipped locally when missing, failed in CI."""
    path = shutil.which(name)
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{name} is required (GEODNS_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed (apt-get install {_PACKAGES.get(name, name)})")
    return path


def child_pids(pid: int, cmdline: str = "") -> list[int]:
    """The processes whose parent is `pid` (and whose command line holds `cmdline`), from
    /proc: what `pgrep -P` says, without procps, which a minimal Debian does not have."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        # The name in parentheses may hold spaces: the fields after its last ")" are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and cmdline in args:
            found.append(int(entry.name))
    return sorted(found)


def split_twins(pids: list[int]) -> tuple[list[int], list[int]]:
    """(the DNS workers' twins among `pids`, the others), by the name a twin gives itself."""
    from geodns.server.twin import TWIN_NAME

    twins, others = [], []
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        (twins if name == TWIN_NAME else others).append(pid)
    return twins, others


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def wait_for_scopes(server: ServerProcess, timeout: float = 120.0) -> str:
    """Wait for the server's log line saying merged ECS scopes are in use; that line.

    The first build over the embedded database takes 10-20 s at the lowest priority."""
    return wait_for(
        lambda: next((line for line in server.lines if "ECS scopes merged" in line), None),
        timeout,
        interval=0.1,
    )
