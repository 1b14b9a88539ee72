"""Step 3, version: plain answers reach regions on an approved model version only.

A version-named host (v43.inference.example.com) reaches only regions serving that
version. Otherwise the service's policy decides: `consistent` keeps regions on an
approved version (the current one, plus a rollout's new one once validated; a stable
share of client networks may get the new one first), `pin` keeps one version, `any`
keeps all.
"""

from __future__ import annotations

from geodns.routing.context import Narrowed, RouteContext, bucket, names, stable_fraction
from geodns.versions.serving import current_version, region_version
from geodns.zones.model import Region, version_label


def narrow(regions: tuple[Region, ...], ctx: RouteContext) -> Narrowed:
    service, state = ctx.service, ctx.state
    versions = {r.name: region_version(service, r, state) for r in regions}
    if ctx.version_label is not None:
        label = ctx.version_label
        kept = tuple(
            r for r in regions if versions[r.name] and version_label(versions[r.name]) == label
        )
        if kept:
            return Narrowed(kept, f"version host {label}: only {names(kept)}")
        # Fail closed: a client that pinned a version must never get another one.
        return Narrowed((), f"version host {label}: no healthy region serves it", outcome="nodata")
    policy = service.version
    if policy.mode == "any":
        return Narrowed(regions, "model versions not considered (version: any)")
    if policy.mode == "pin":
        kept = tuple(r for r in regions if versions[r.name] == policy.pin)
        if kept:
            return Narrowed(kept, f"pinned to version {policy.pin}: {names(kept)}")
        if policy.when_none == "any":
            return Narrowed(
                regions, f"no healthy region serves pinned version {policy.pin}: any version"
            )
        return Narrowed(
            (),
            f"no healthy region serves pinned version {policy.pin}",
            outcome=policy.when_none,
        )
    if all(v is None for v in versions.values()):
        return Narrowed(regions, "no region reports a model version")
    judged = state.versions.get(service.key)
    if judged is None:
        current = current_version(service, state)
        approved = frozenset() if current is None else frozenset({current})
        canary = None
    else:
        approved, canary = judged.approved, judged.canary
    if canary is not None and policy.canary_share > 0:
        where = bucket(ctx.client)
        share = stable_fraction(where, service.key, "canary", canary)
        on_canary = tuple(r for r in regions if versions[r.name] == canary)
        if share < policy.canary_share and on_canary:
            return Narrowed(
                on_canary,
                f"canary bucket {where} ({policy.canary_share:.0%} of buckets) gets new"
                f" version {canary}: {names(on_canary)}",
                by_network=True,
            )
        hashed = bool(on_canary)
    else:
        hashed = False
    kept = tuple(r for r in regions if versions[r.name] in approved)
    listed = ", ".join(sorted(approved)) or "none"
    if not kept:
        return Narrowed(
            regions, f"no healthy region on an approved version ({listed}): all", by_network=hashed
        )
    left = [f"{r.name} ({versions[r.name] or 'no version'})" for r in regions if r not in kept]
    out = f"; left out {', '.join(left)}" if left else ""
    return Narrowed(kept, f"approved version {listed}: {names(kept)}{out}", by_network=hashed)
