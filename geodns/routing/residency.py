"""Step 1, residency: a client under a rule is answered only from that rule's regions."""

from __future__ import annotations

from geodns.routing.context import Narrowed, RouteContext, names
from geodns.zones.model import Region


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    record = ctx.client.record
    country = record.country if record else None
    continent = record.continent if record else None
    for rule in ctx.service.residency:
        if rule.clients.matches(country, continent):
            allowed = tuple(r for r in regions if r.name in rule.regions)
            return Narrowed(
                allowed,
                f"client in {country or continent} matches residency rule "
                f"({rule.clients.description}): only {names(allowed)}",
                rule=rule,
            )
    where = country or continent or "an unknown location"
    return Narrowed(regions, f"no residency rule for {where}: all regions allowed")
