"""One routing decision, asked for by name and client address: for `geodns explain` and the
admin API's /api/explain."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdatatype

from geodns.errors import GeodnsError
from geodns.routing.pipeline import Decision
from geodns.server.geoanswer import SERVICE, GeoAnswers, GeoResult


def explain(geo: GeoAnswers, name: str, client: str, prefix: int | None = None) -> GeoResult:
    """The decision for an A query for service `name` from `client` (with ECS /`prefix`).

    Raises GeodnsError, saying what is wrong, for a bad address or prefix or a name that
    is not a service.
    """
    try:
        qname = dns.name.from_text(name).canonicalize().to_wire()
        address = ipaddress.ip_address(client)
    except (ValueError, dns.exception.DNSException) as exc:
        raise GeodnsError(str(exc)) from None
    dynamic = geo.names.get(qname)
    if dynamic is None or dynamic.kind != SERVICE:
        known = sorted({d.service.key for d in geo.names.values()})
        raise GeodnsError(f"{name} is not a service name (services: {', '.join(known)})")
    if prefix is not None:
        if not 0 <= prefix <= address.max_prefixlen:
            raise GeodnsError(f"prefix {prefix} out of range for {address}")
        address = ipaddress.ip_network((address, prefix), strict=False).network_address
    return geo.resolve(dynamic, dns.rdatatype.A, geo.locate(address, prefix))


def decision_json(decision: Decision, scope_prefix: int) -> dict[str, object]:
    record = decision.client.record
    return {
        "service": decision.service.key,
        "client": {
            "address": str(decision.client.address),
            "network": str(decision.client.network),
            "country": record.country if record else None,
            "continent": record.continent if record else None,
            "subdivision": record.subdivision if record else None,
            "location": [record.lat, record.lon] if record and record.lat is not None else None,
        },
        "steps": [
            {"step": s.step, "kept": list(s.kept), "reason": s.reason} for s in decision.steps
        ],
        "outcome": decision.outcome,
        "regions": [r.name for r in decision.regions],
        "answer": {
            rdtype: [a for _, addrs in decision.select(family) for a in addrs]
            for family, rdtype in ((4, "A"), (6, "AAAA"))
        },
        "scope_prefix": scope_prefix,
    }
