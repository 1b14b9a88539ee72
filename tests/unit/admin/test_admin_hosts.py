"""Which Host headers the admin side answers (DNS rebinding), decided without a server."""

from __future__ import annotations

import pytest

from geodns.admin.hosts import HostPolicy, split_host

POLICY = HostPolicy(["geodns.internal.example", "Proxy.Example.:443"])


@pytest.mark.parametrize(
    ("header", "local"),
    [
        (None, "127.0.0.1"),  # HTTP/1.0 without Host: no browser sends that
        ("127.0.0.1:8053", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8053", "::1"),
        ("[::1]", "::1"),
        ("localhost:8053", "127.0.0.1"),
        ("LOCALHOST.", "::1"),
        ("dashboard.localhost:8053", "127.0.0.1"),  # RFC 6761 6.3: the loopback too
        ("192.0.2.7:8053", "192.0.2.7"),  # a wildcard listen: the address the client used
        ("127.0.0.1:8053", "::ffff:127.0.0.1"),  # a dual-stack socket's view of it
        ("geodns.internal.example", "192.0.2.7"),  # --http-host
        ("geodns.internal.example.:8053", "192.0.2.7"),
        ("proxy.example", "127.0.0.1"),  # --http-host given with a port and a dot
    ],
)
def test_allowed(header: str | None, local: str) -> None:
    assert POLICY.allows(header, local)


@pytest.mark.parametrize(
    ("header", "local"),
    [
        ("evil.example:8053", "127.0.0.1"),  # the rebinding page's own name
        ("evil.example", "127.0.0.1"),
        ("127.0.0.1.evil.example", "127.0.0.1"),
        ("localhost.evil.example", "127.0.0.1"),
        ("2130706433:8053", "127.0.0.1"),  # 127.0.0.1 as a number is a name to HTTP
        ("localhost:8053", "192.0.2.7"),  # localhost is only the loopback's name
        ("192.0.2.8:8053", "192.0.2.7"),  # another address
        ("127.0.0.1:80a", "127.0.0.1"),
        ("", "127.0.0.1"),
        (":8053", "127.0.0.1"),
        ("sub.geodns.internal.example", "192.0.2.7"),  # names are exact
    ],
)
def test_refused(header: str, local: str) -> None:
    assert not POLICY.allows(header, local)


def test_split_host() -> None:
    assert split_host("[2001:DB8::1]:8053") == ("2001:db8::1", "8053")
    assert split_host("2001:db8::1") == ("2001:db8::1", "")
    assert split_host("Example.COM.:80") == ("example.com", "80")
