"""FailoverClient's choice of region and its reasons, with the network replaced by a script."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import dns.exception
import dns.name
import pytest

from geodns.client import (
    AllRegionsFailed,
    BreakerConfig,
    Endpoint,
    FailoverClient,
    Resolution,
    ResolutionError,
)
from geodns.client.failover import _Call, _Failure
from geodns.client.resolve import region_of, srv_owner


class Scripted(FailoverClient):
    """A client whose regions answer what `script` says: a status, or a _Failure."""

    def __init__(self, script: dict[str, int | _Failure], **kw: object) -> None:
        super().__init__("inference.example.com", nameservers=["127.0.0.1"], **kw)
        self.script = script
        self.sent: list[str] = []
        endpoints = tuple(
            Endpoint(r, f"{r}.inference.example.com", (f"192.0.2.{i}",), 443, i)
            for i, r in enumerate(script, 1)
        )
        self._resolution = Resolution(endpoints, 30, "SRV")
        self._expires = float("inf")

    async def _send(self, url: str, call: _Call) -> tuple[int, Mapping[str, str], bytes]:
        region = next(e.region for e in self._resolution.endpoints if e.address in url)
        self.sent.append(region)
        outcome = self.script[region]
        if isinstance(outcome, _Failure):
            raise outcome
        return outcome, {}, b"{}"


def run(client: Scripted) -> object:
    async def main() -> object:
        try:
            return await client.request("GET", "/v1/models")
        except AllRegionsFailed as e:
            return e

    return asyncio.run(main())


def test_first_region_and_its_url() -> None:
    client = Scripted({"us-east-1": 200, "eu-west-1": 200})
    response = run(client)
    assert response.region == "us-east-1"
    assert response.url == "https://192.0.2.1:443/v1/models"
    assert response.choice.reason == "us-east-1: first in SRV order"


def test_failure_statuses_fail_over_and_others_do_not() -> None:
    client = Scripted({"us-east-1": 503, "eu-west-1": 200})
    response = run(client)
    assert response.region == "eu-west-1"
    assert response.choice.reason == "us-east-1 failed: HTTP 503; eu-west-1: next in SRV order"
    client = Scripted({"us-east-1": 404, "eu-west-1": 200})
    response = run(client)
    assert (response.region, response.status) == ("us-east-1", 404)
    client = Scripted({"us-east-1": 429, "eu-west-1": 200}, failure_statuses={429})
    assert run(client).region == "eu-west-1"


def test_skipped_regions_say_why() -> None:
    client = Scripted(
        {"us-east-1": _Failure("connection refused"), "eu-west-1": 200},
        breaker=BreakerConfig(failures=1, cooldown=60),
    )
    run(client)
    response = run(client)
    assert client.sent == ["us-east-1", "eu-west-1", "eu-west-1"]
    assert response.choice.reason == (
        "us-east-1 skipped: circuit open (1 failure: connection refused); "
        "eu-west-1: next in SRV order"
    )
    assert response.choice.attempts == (
        ("us-east-1", "skipped: circuit open (1 failure: connection refused)"),
    )


def test_all_failing_tries_each_region_once_then_raises() -> None:
    client = Scripted(
        {"a": _Failure("timed out after 2 s", timeout=True), "b": 500, "c": 502},
        breaker=BreakerConfig(failures=5, cooldown=60),
    )
    error = run(client)
    assert isinstance(error, AllRegionsFailed)
    assert client.sent == ["a", "b", "c"]
    assert error.attempts == (
        ("a", "failed: timed out after 2 s"),
        ("b", "failed: HTTP 500"),
        ("c", "failed: HTTP 502"),
    )
    assert client.breakers()["a"].state == "open"  # the timeout opened it
    assert client.breakers()["b"].state == "closed"
    # a is open: the others are tried first, then a anyway, each once.
    client.sent.clear()
    run(client)
    assert client.sent == ["b", "c", "a"]


def test_fail_closed_when_asked() -> None:
    client = Scripted(
        {"a": _Failure("connection refused")},
        breaker=BreakerConfig(failures=1, cooldown=60),
        fail_open=False,
    )
    run(client)
    client.sent.clear()
    error = run(client)
    assert client.sent == []
    assert error.attempts == (("a", "skipped: circuit open (1 failure: connection refused)"),)


def test_url_brackets_ipv6_and_validation() -> None:
    client = FailoverClient("inference.example.com", nameservers=["::1"], scheme="http")
    endpoint = Endpoint("r", "r.inference.example.com", ("2001:db8::1",), 8080)
    assert client.url(endpoint, "/x") == "http://[2001:db8::1]:8080/x"
    assert client.host_header == "inference.example.com"
    assert client.default_port == 80
    with pytest.raises(ValueError):
        FailoverClient("inference.example.com", nameservers=["::1"], scheme="ftp")


def test_names() -> None:
    service = dns.name.from_text("inference.example.com")
    assert srv_owner(service) == dns.name.from_text("_inference._tcp.example.com")
    assert region_of(dns.name.from_text("us-east-1.inference.example.com"), service) == (
        "us-east-1"
    )
    assert region_of(dns.name.from_text("gpu1.example.net"), service) == "gpu1.example.net"


class DeadResolver:
    """A resolver whose every query times out, counting them."""

    def __init__(self) -> None:
        self.asked = 0

    async def resolve(self, *args: object, **kw: object) -> object:
        self.asked += 1
        await asyncio.sleep(0.01)
        raise dns.exception.Timeout()


def test_dns_failure_is_not_retried_by_every_waiting_request() -> None:
    now = [0.0]
    resolver = DeadResolver()
    client = FailoverClient(
        "inference.example.com", resolver=resolver, dns_retry=2.0, clock=lambda: now[0]
    )

    async def burst() -> list[object]:
        return await asyncio.gather(
            *(client.request("GET", "/") for _ in range(5)), return_exceptions=True
        )

    async def main() -> None:
        errors = await burst()
        assert all(isinstance(e, ResolutionError) for e in errors), errors
        assert "SRV _inference._tcp.example.com: DNS timeout" in str(errors[0])
        assert resolver.asked == 1
        now[0] = 1.9
        assert all(isinstance(e, ResolutionError) for e in await burst())
        assert resolver.asked == 1
        now[0] = 2.0
        assert all(isinstance(e, ResolutionError) for e in await burst())
        assert resolver.asked == 2

    asyncio.run(main())
