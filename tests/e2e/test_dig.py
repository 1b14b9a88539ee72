"""docs/wire.md's `dig` and `kdig` commands against the real server, as an operator runs them."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ServerProcess, require_tool


def dig(server: ServerProcess, *args: str, tool: str = "dig") -> str:
    path = require_tool(tool)
    result = subprocess.run(
        [path, "@127.0.0.1", "-p", str(server.port), *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_dig_a(server: ServerProcess) -> None:
    out = dig(server, "www.example.com")
    assert "status: NOERROR" in out
    assert "flags: qr aa rd;" in out
    assert "192.0.2.80" in out and "192.0.2.81" in out


def test_dig_soa(server: ServerProcess) -> None:
    out = dig(server, "SOA", "example.com", "+short")
    assert out.startswith("ns1.example.com. hostmaster.example.com. ")


def test_dig_nxdomain(server: ServerProcess) -> None:
    out = dig(server, "nosuch.example.com")
    assert "status: NXDOMAIN" in out
    assert "AUTHORITY: 1" in out


def test_dig_tcp(server: ServerProcess) -> None:
    out = dig(server, "+tcp", "www.example.com")
    assert "(TCP)" in out and "192.0.2.80" in out


def test_dig_nsid(server: ServerProcess) -> None:
    out = dig(server, "+nsid", "www.example.com")
    assert 'NSID: 74 65 73 74 2d 6e 73 31 ("test-ns1")' in out


def test_dig_subnet(server: ServerProcess) -> None:
    out = dig(server, "+subnet=81.2.69.0/24", "www.example.com")
    assert "CLIENT-SUBNET: 81.2.69.0/24/0" in out
    assert "status: NOERROR" in out


@pytest.mark.parametrize("args", [["+tcp"], ["+notcp"]])
def test_kdig(server: ServerProcess, args: list[str]) -> None:
    out = dig(server, *args, "+nsid", "www.example.com", "AAAA", tool="kdig")
    assert "NOERROR" in out
    assert "2001:db8::80" in out
    assert "test-ns1" in out


def test_dig_version_bind(server: ServerProcess) -> None:
    out = dig(server, "CH", "TXT", "version.bind", "+short")
    assert out.strip().startswith('"geodns ')
