"""RFC 9018 server cookies: the appendix A vectors, lifetimes, and the reply's option."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import pytest

from geodns.wire.cookie import ServerCookies

# RFC 9018 appendix A (also Knot's tests/libknot/test_cookies.c).
SECRET_A = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
CLIENT_A1 = bytes.fromhex("2464c4abcf10c957")
CLIENT_A3 = bytes.fromhex("fc93fc62807ddb86")
SECRET_6 = bytes.fromhex("dd3bdf9344b678b185a6f5cb60fca715")
SECRET_7 = bytes.fromhex("445536bcd2513298075a5d379663c962")
CLIENT_6 = bytes.fromhex("22681ab97d52c298")
CLIENT_6_ADDRESS = "2001:db8:220:1:59de:d0f4:8769:82b8"


@pytest.mark.parametrize(
    ("secret", "client", "address", "now", "expected"),
    [
        # A.1 Learning a new Server Cookie
        (SECRET_A, CLIENT_A1, "198.51.100.100", 1559731985, "010000005cf79f111f8130c3eee29480"),
        # A.2 The same client learning a renewed (fresh) Server Cookie
        (SECRET_A, CLIENT_A1, "198.51.100.100", 1559734385, "010000005cf7a871d4a564a1442aca77"),
        # A.4 IPv6 query with a rolled-over secret: before and after the roll
        (SECRET_6, CLIENT_6, CLIENT_6_ADDRESS, 1559741817, "010000005cf7c57926556bd0934c72f8"),
        (SECRET_7, CLIENT_6, CLIENT_6_ADDRESS, 1559741961, "010000005cf7c609a6bb79d16625507a"),
    ],
)
def test_rfc9018_vectors(
    secret: bytes, client: bytes, address: str, now: int, expected: str
) -> None:
    cookies = ServerCookies(secret)
    server = cookies.make(client, address, now=now)
    assert server.hex() == expected
    assert cookies.valid(client + server, address, now=now)


def test_rfc9018_vector_with_reserved_octets_set() -> None:
    # A.3: another server made this cookie with reserved octets ABCDEF; it still checks.
    server = bytes.fromhex("01abcdef5cf78f71a314227b6679ebf5")
    cookies = ServerCookies(SECRET_A)
    assert cookies.valid(CLIENT_A3 + server, "203.0.113.203", now=1559727985)


def test_lifetimes() -> None:
    cookies = ServerCookies(SECRET_7)
    cookie = CLIENT_6 + cookies.make(CLIENT_6, CLIENT_6_ADDRESS, now=1559741961)
    assert cookies.valid(cookie, CLIENT_6_ADDRESS, now=1559741961 + 3600)
    assert not cookies.valid(cookie, CLIENT_6_ADDRESS, now=1559741961 + 3601)  # too old
    assert cookies.valid(cookie, CLIENT_6_ADDRESS, now=1559741961 - 300)
    assert not cookies.valid(cookie, CLIENT_6_ADDRESS, now=1559741961 - 301)  # too new


def test_a_cookie_is_valid_only_for_its_address_secret_version_and_length() -> None:
    cookies = ServerCookies(SECRET_A)
    cookie = CLIENT_A1 + cookies.make(CLIENT_A1, "198.51.100.100", now=1559731985)
    assert not cookies.valid(cookie, "198.51.100.101", now=1559731985)
    assert not ServerCookies(SECRET_7).valid(cookie, "198.51.100.100", now=1559731985)
    assert not cookies.valid(b"\x02" + cookie[1:], "198.51.100.100", now=1559731985)
    assert not cookies.valid(cookie[:8] + b"\x0a" + cookie[9:], "198.51.100.100", now=1559731985)
    assert not cookies.valid(cookie + b"\x00", "198.51.100.100", now=1559731985)
    assert not cookies.valid(CLIENT_A1, "198.51.100.100", now=1559731985)


def test_timestamps_wrap_as_serial_numbers() -> None:
    # RFC 1982: a cookie made just before the 32-bit wrap is still young just after it.
    cookies = ServerCookies(SECRET_A)
    cookie = CLIENT_A1 + cookies.make(CLIENT_A1, "198.51.100.100", now=0xFFFFFFF0)
    assert cookies.valid(cookie, "198.51.100.100", now=(1 << 32) + 20)


def test_reply_option_keeps_the_client_cookie_and_adds_a_fresh_server_cookie() -> None:
    cookies = ServerCookies(SECRET_A, clock=lambda: 1559731985.5)
    stale = CLIENT_A1 + bytes(16)  # a server cookie of another secret, or a stale one
    option, until = cookies.reply_option(stale, "198.51.100.100")
    assert option[:4] == struct.pack("!HH", 10, 24)
    assert option[4:].hex() == CLIENT_A1.hex() + "010000005cf79f111f8130c3eee29480"
    assert until == 0  # a fresh cookie is for this reply alone
    assert cookies.reply_option(CLIENT_A1, "198.51.100.100") == (option, 0)


def test_a_valid_cookie_is_returned_as_it_came_for_half_an_hour() -> None:
    # RFC 9018 4.3, as NSD does: the client's next queries stay the same bytes.
    now = [1559731985]
    cookies = ServerCookies(SECRET_A, clock=lambda: now[0])
    cookie = CLIENT_A1 + cookies.make(CLIENT_A1, "198.51.100.100")
    now[0] += 1799
    option, until = cookies.reply_option(cookie, "198.51.100.100")
    assert option[4:] == cookie and until == 1559731985 + 1800
    now[0] += 1  # half an hour old: a new one is due
    option, until = cookies.reply_option(cookie, "198.51.100.100")
    assert option[4:12] == CLIENT_A1 and option[4:] != cookie and until == 0
    # Valid only for the address it was made for.
    assert cookies.reply_option(cookie, "198.51.100.101")[1] == 0


def test_no_secret_means_one_random_secret_per_process() -> None:
    one, two = ServerCookies(), ServerCookies()
    cookie = CLIENT_A1 + one.make(CLIENT_A1, "192.0.2.1")
    assert two.valid(cookie, "192.0.2.1")  # a reload keeps cookies valid
    with pytest.raises(ValueError):
        ServerCookies(b"short")


def test_has_valid_server_cookie_reads_the_query() -> None:
    cookies = ServerCookies(SECRET_A)
    good = CLIENT_A1 + cookies.make(CLIENT_A1, "192.0.2.1")

    def query(cookie: bytes) -> bytes:
        option = dns.edns.GenericOption(10, cookie)
        return dns.message.make_query("www.example.com", "A", options=[option]).to_wire()

    assert cookies.has_valid_server_cookie_untrusted(query(good), "192.0.2.1")
    assert not cookies.has_valid_server_cookie_untrusted(query(good), "192.0.2.2")
    assert not cookies.has_valid_server_cookie_untrusted(query(CLIENT_A1), "192.0.2.1")
    no_cookie = dns.message.make_query("www.example.com", "A").to_wire()
    assert not cookies.has_valid_server_cookie_untrusted(no_cookie, "192.0.2.1")
    assert not cookies.has_valid_server_cookie_untrusted(b"\x00" * 11, "192.0.2.1")
    assert not cookies.has_valid_server_cookie_untrusted(query(good), "not an address")
