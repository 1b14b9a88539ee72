"""contrib/geodns.service checked without booting systemd: `systemd-analyze verify` knows every
directive, the commands parse with geodns's own parser, and the server, run with the unit's
own arguments under strace, makes no system call the unit's SystemCallFilter would refuse.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.cli import build_parser
from tests.conftest import EXAMPLE_ZONES, REQUIRE_TOOLS, ROOT, wait_for

UNIT = ROOT / "contrib" / "geodns.service"
BINARY = "/opt/geodns/bin/geodns"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRE_TOOLS:
            pytest.fail(f"{name} is required (GEODNS_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path


def directives(text: str) -> dict[str, list[str]]:
    """Key -> values in the order given ([Service] and the rest alike), continuations joined."""
    out: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


UNIT_KEYS = directives(UNIT.read_text())


def command(key: str) -> list[str]:
    [value] = UNIT_KEYS[key]
    return shlex.split(value)


def test_systemd_knows_every_directive(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    # verify wants the programs to exist: the unit, with the venv's geodns made this one.
    unit = tmp_path / "geodns.service"
    unit.write_text(UNIT.read_text().replace(BINARY, shutil.which("true") or "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys and bad values are warnings with exit 0: any word from it is a failure.
    assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr


def test_the_commands_are_geodns_commands() -> None:
    parser = build_parser()
    start = command("ExecStart")
    assert start[0] == BINARY
    serve = parser.parse_args(start[1:])
    assert serve.command == "serve"
    # The paths it writes are the directories systemd makes for it; the zones it reads are
    # those ExecStartPre checks.
    assert serve.state_dir == "/var/lib/" + UNIT_KEYS["StateDirectory"][0]
    assert serve.scope_cache == "/var/cache/" + UNIT_KEYS["CacheDirectory"][0]
    check = command("ExecStartPre")
    assert check[0] == BINARY and parser.parse_args(check[1:]).paths == [serve.zones]
    assert serve.zones.startswith(UNIT_KEYS["ReadOnlyPaths"][0] + "/")
    # SIGHUP is the server's reload (geodns.control.plane); it tells systemd READY=1.
    assert command("ExecReload") == ["/bin/kill", "-HUP", "$MAINPID"]
    assert UNIT_KEYS["Type"] == ["notify"]
    assert UNIT_KEYS["NotifyAccess"] == ["main"]
    # Port 53 needs this capability and no other.
    assert UNIT_KEYS["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert UNIT_KEYS["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert UNIT_KEYS["LimitNICE"] == ["+0"]  # a reload's thread may go to SCHED_IDLE and back


def syscall_groups(analyze: str) -> dict[str, set[str]]:
    listing = subprocess.run(
        [analyze, "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, set[str]] = {}
    current: set[str] = set()
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), set())
        elif line.strip() and not line.strip().startswith("#"):
            current.add(line.strip())
    return groups


def allowed_syscalls(analyze: str) -> set[str]:
    """What the unit's SystemCallFilter= lines let through (allow lists, then ~deny lists)."""
    groups = syscall_groups(analyze)

    def expand(name: str) -> set[str]:
        if not name.startswith("@"):
            return {name}
        return set().union(*(expand(member) for member in groups[name]))

    allowed: set[str] = set()
    for value in UNIT_KEYS["SystemCallFilter"]:
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


@pytest.mark.timeout(300)
def test_the_server_makes_only_system_calls_the_unit_allows(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    strace = tool("strace", "strace")
    allowed = allowed_syscalls(analyze)
    assert {"fork", "sched_setscheduler", "setpriority", "prctl"} <= allowed

    # The unit's own command line, with its directories made temporary and loopback ports.
    zones = tmp_path / "zones"
    shutil.copytree(EXAMPLE_ZONES, zones)
    token = tmp_path / "admin-token"
    token.write_text("x" * 32 + "\n")
    moved = {
        "/etc/geodns/zones": str(zones),
        "/etc/geodns/admin-token": str(token),
        "/var/lib/geodns": str(tmp_path / "state"),
        "/var/cache/geodns": str(tmp_path / "cache"),
        "0.0.0.0:53": "127.0.0.1:0",
        "[::]:53": "[::1]:0",
        "127.0.0.1:8053": "127.0.0.1:0",
    }
    (tmp_path / "state").mkdir()
    args = [moved.get(a, a) for a in command("ExecStart")[1:]]
    counts = tmp_path / "strace.txt"
    proc = subprocess.Popen(
        [strace, "-f", "-qq", "-c", "-o", str(counts), sys.executable, "-m", "geodns", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        lines.extend(line.rstrip() for line in proc.stderr)

    threading.Thread(target=drain, daemon=True).start()
    try:
        listening = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        admin = re.compile(r"admin HTTP on (http://\S+/)")
        port = int(wait_for(lambda: _match(listening, lines), timeout=60).group(1))
        url = wait_for(lambda: _match(admin, lines), timeout=5).group(1)
        reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.0.1", 2, port)
        assert reply.rcode() == dns.rcode.NOERROR
        with urllib.request.urlopen(url + "healthz", timeout=5) as response:
            assert response.status == 200
        # The ECS scope build (a child process, numpy) and a reload (the stand-in's fork,
        # SCHED_IDLE) are the unusual paths.
        wait_for(lambda: any("ECS scopes merged" in line for line in lines), 240, 0.2)
        server = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        os.kill(server, signal.SIGHUP)
        wait_for(lambda: any("reload (SIGHUP): config version 2" in x for x in lines), 30, 0.1)
        os.kill(server, signal.SIGTERM)
        assert proc.wait(30) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    used = {
        fields[-1]
        for row in counts.read_text().splitlines()
        if (fields := row.split()) and re.fullmatch(r"[a-z0-9_]+", fields[-1])
    } - {"total", "syscall"}
    assert {"clone", "sched_setscheduler"} <= used, sorted(used)  # the paths above ran
    assert not used - allowed, f"refused by SystemCallFilter: {sorted(used - allowed)}"


def _match(pattern: re.Pattern[str], lines: list[str]) -> re.Match[str] | None:
    return next((m for line in list(lines) if (m := pattern.search(line))), None)
