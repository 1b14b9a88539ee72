"""Step 2, health: drop regions that are down or drained; fail open, or closed under residency."""

from __future__ import annotations

from geodns.routing.context import Narrowed, RouteContext, names
from geodns.zones.model import Region


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    key = ctx.service.key
    up = tuple(r for r in regions if ctx.state.get(key, r.name).up)
    out = [f"{r.name} {ctx.state.get(key, r.name).health}" for r in regions if r not in up]
    if up:
        reason = f"healthy: {names(up)}"
        return Narrowed(up, reason + (f" (left out: {', '.join(out)})" if out else ""))
    if ctx.rule is not None:
        # Residency fails closed: never leak a client to another jurisdiction.
        fail = ctx.rule.when_none
        return Narrowed(
            (),
            f"no allowed region is healthy ({', '.join(out) or 'none allowed'}):"
            f" failing closed ({fail})",
            outcome=fail.mode,
            fallback=fail.addresses,
        )
    if ctx.service.when_all_down == "servfail":
        return Narrowed(
            (), "every region is down: SERVFAIL (when_all_down: servfail)", outcome="servfail"
        )
    # As gdnsd and Route 53 do: when nothing is healthy, the checks are more likely wrong.
    return Narrowed(regions, f"every region is down ({', '.join(out)}): answering all (fail open)")
