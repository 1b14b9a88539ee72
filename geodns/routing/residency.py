"""Step 1, residency: a client under a rule is answered only from that rule's regions."""

from __future__ import annotations

from geodns.health.state import StateSnapshot
from geodns.routing.context import Narrowed, RouteContext, names
from geodns.zones.model import FailClosed, Region, ResidencyRule, Service


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    record = ctx.client.record
    country = record.country if record else None
    continent = record.continent if record else None
    # An override (a network, an ASN) outranks geography: it is how a GeoIP error or a
    # corporate range is pinned. The class path never routes such clients (it declines
    # their addresses), so routing.classes.residency_index reads geography only.
    client = ctx.client
    for rule in ctx.service.residency:
        if rule.clients.matches_network(client.address, client.asn):
            allowed = tuple(r for r in regions if r.name in rule.regions)
            return Narrowed(
                allowed,
                f"client {client.address} matches {rule.describe()}: only {names(allowed)}",
                rule=rule,
            )
    for rule in ctx.service.residency:
        if rule.clients.matches(country, continent):
            allowed = tuple(r for r in regions if r.name in rule.regions)
            who = country or continent or "an unknown location"
            return Narrowed(
                allowed,
                f"client in {who} matches {rule.describe()}: only {names(allowed)}",
                rule=rule,
            )
    if country is None and continent is None:
        fail = ctx.service.unlocated
        if fail is not None:
            # A strict operator's choice: a client whose jurisdiction is unknown is not
            # routed to any region at all.
            return Narrowed(
                (),
                f"client cannot be located: failing closed (unlocated: {fail})",
                outcome=fail.mode,
                fallback=fail.addresses,
            )
        return Narrowed(regions, "no residency rule for an unknown location: all regions allowed")
    return Narrowed(regions, f"no residency rule for {country or continent}: all regions allowed")


def stranded_by_drain(
    service: Service, state: StateSnapshot, region: str
) -> tuple[ResidencyRule, ...]:
    """The residency rules whose clients draining `region` would leave with no region.

    A rule is stranded when `region` is the last of its regions in answers now: drained
    too, the health step fails its clients closed (refused, or as its `when_none` says).
    """
    stranded = []
    for rule in service.residency:
        serving = {name for name in rule.regions if state.get(service.key, name).up}
        if serving == {region}:
            stranded.append(rule)
    return tuple(stranded)


def fail_closed_outcome(fail: FailClosed) -> str:
    """What a client failed closed gets, completing "they will ...", for an operator."""
    if fail.mode == "answer":
        return f"get the unavailable answer {', '.join(fail.addresses)}"
    return {
        "refuse": "be refused (REFUSED)",
        "servfail": "get SERVFAIL",
        "nodata": "get no address (NODATA)",
    }.get(fail.mode, f"get {fail.mode}")
