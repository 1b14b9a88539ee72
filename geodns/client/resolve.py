"""Resolve a service to its regions, in order: the SRV RRset, else plain A/AAAA."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from geodns.errors import GeodnsError


class ResolutionError(GeodnsError):
    """The service's regions could not be resolved (and no earlier list was known)."""


@dataclass(frozen=True)
class Endpoint:
    """One region of the service: where its requests go."""

    region: str  # the SRV target's first label under the service (us-east-1), else the target
    target: str  # the SRV target (us-east-1.inference.example.com), or the service name
    addresses: tuple[str, ...]  # IPv4 first, then IPv6; requests use the first
    port: int
    priority: int = 0
    weight: int = 0

    @property
    def address(self) -> str:
        return self.addresses[0]


@dataclass(frozen=True)
class Resolution:
    """The ordered endpoints of one lookup, and how long they may be used."""

    endpoints: tuple[Endpoint, ...]
    ttl: int  # the smallest TTL of the RRsets used
    source: str  # "SRV" or "A/AAAA"
    skipped: tuple[str, ...] = ()  # SRV targets left out, with why


def srv_owner(service: dns.name.Name) -> dns.name.Name:
    """_inference._tcp.example.com. for inference.example.com."""
    first, *rest = service.labels
    return dns.name.Name((b"_" + first, b"_tcp", *rest))


def region_of(target: dns.name.Name, service: dns.name.Name) -> str:
    """us-east-1 for us-east-1.inference.example.com.; other targets keep their whole name."""
    if target.is_subdomain(service) and len(target) == len(service) + 1:
        return target.labels[0].decode()
    return target.to_text(omit_final_dot=True)


def _sort_key(address: str) -> int:
    return ipaddress.ip_address(address).version


async def _addresses(
    resolver: dns.asyncresolver.Resolver,
    name: dns.name.Name,
    known: dict[dns.name.Name, list[tuple[str, int]]],
) -> tuple[list[str], int | None]:
    """A then AAAA of `name`: from the SRV reply's additional section, else asked for."""
    found = known.get(name)
    if found is None:
        found = []
        answers = await asyncio.gather(
            *(_ask(resolver, name, rdtype) for rdtype in ("A", "AAAA")),
            return_exceptions=True,
        )
        errors = [a for a in answers if isinstance(a, BaseException)]
        for answer in answers:
            if isinstance(answer, dns.resolver.Answer) and answer.rrset is not None:
                found += [(r.address, answer.rrset.ttl) for r in answer.rrset]
        if not found:
            # A real error (a timeout, SERVFAIL) first, then NXDOMAIN; NoAnswer for both
            # types is simply no address.
            for error in errors:
                if not _is_negative(error):
                    raise error
            for error in errors:
                if isinstance(error, dns.resolver.NXDOMAIN):
                    raise error
    found = sorted(found, key=lambda item: _sort_key(item[0]))
    ttl = min((ttl for _, ttl in found), default=None)
    return [address for address, _ in found], ttl


def _is_negative(error: BaseException) -> bool:
    return isinstance(error, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer)


async def _ask(
    resolver: dns.asyncresolver.Resolver, name: dns.name.Name, rdtype: str
) -> dns.resolver.Answer:
    return await resolver.resolve(name, rdtype, search=False)


async def resolve_service(
    resolver: dns.asyncresolver.Resolver, service: str, default_port: int
) -> Resolution:
    """The service's endpoints in SRV order (priority, then weight, highest first).

    Without an SRV RRset, every address of the service name is an endpoint of its own
    (named by its address), on `default_port`. Raises ResolutionError when nothing
    usable comes back.
    """
    name = dns.name.from_text(service)
    owner = srv_owner(name)
    try:
        srv = await _ask(resolver, owner, "SRV")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        srv = None
    except dns.exception.DNSException as e:
        raise ResolutionError(f"SRV {owner.to_text(True)}: {_describe(e)}") from e
    if srv is None or srv.rrset is None or len(srv.rrset) == 0:
        return await _plain(resolver, name, default_port)
    known: dict[dns.name.Name, list[tuple[str, int]]] = {}
    for rrset in srv.response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            known.setdefault(rrset.name, []).extend((r.address, rrset.ttl) for r in rrset)
    records = sorted(srv.rrset, key=lambda r: (r.priority, -r.weight))
    records = [r for r in records if r.target != dns.name.root]  # "." : service not offered
    looked_up = await asyncio.gather(
        *(_addresses(resolver, r.target, known) for r in records), return_exceptions=True
    )
    endpoints: list[Endpoint] = []
    skipped: list[str] = []
    ttl = srv.rrset.ttl
    for record, result in zip(records, looked_up, strict=True):
        region = region_of(record.target, name)
        if isinstance(result, BaseException):
            skipped.append(f"{region}: {_describe(result)}")
            continue
        addresses, address_ttl = result
        if not addresses:
            skipped.append(f"{region}: {record.target} has no A or AAAA")
            continue
        if address_ttl is not None:
            ttl = min(ttl, address_ttl)
        target = record.target.to_text(omit_final_dot=True)
        endpoints.append(
            Endpoint(region, target, tuple(addresses), record.port, record.priority, record.weight)
        )
    if not endpoints:
        detail = "; ".join(skipped)
        raise ResolutionError(f"SRV {owner.to_text(True)}: no target has an address ({detail})")
    return Resolution(tuple(endpoints), ttl, "SRV", tuple(skipped))


async def _plain(
    resolver: dns.asyncresolver.Resolver, name: dns.name.Name, port: int
) -> Resolution:
    target = name.to_text(omit_final_dot=True)
    no_srv = f"no SRV RRset at {srv_owner(name).to_text(omit_final_dot=True)}"
    try:
        addresses, ttl = await _addresses(resolver, name, {})
    except dns.exception.DNSException as e:
        raise ResolutionError(f"{target}: {_describe(e)} ({no_srv})") from e
    if not addresses:
        raise ResolutionError(f"{target}: no A or AAAA ({no_srv})")
    endpoints = tuple(Endpoint(a, target, (a,), port) for a in addresses)
    return Resolution(endpoints, ttl or 0, "A/AAAA")


def _describe(error: BaseException) -> str:
    if isinstance(error, dns.resolver.NXDOMAIN):
        return "NXDOMAIN"
    if isinstance(error, dns.resolver.NoAnswer):
        return "no answer"
    if isinstance(error, dns.exception.Timeout):
        return "DNS timeout"
    if isinstance(error, dns.resolver.NoNameservers):
        return "no name server answered (SERVFAIL or REFUSED)"
    return str(error) or type(error).__name__
