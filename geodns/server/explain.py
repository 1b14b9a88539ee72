"""One routing decision, asked for by name and client address: for `geodns explain` and the
admin API's /api/explain, and the one way both print it.

/api/explain answers `explain_body()`; `geodns explain` prints `explain_lines()` of that
body, whether a live server sent it or the CLI decided offline, so that the two read alike
and each says which region state it shows (`state`):

    {"source": "live" | "offline",
     "server": admin URL asked | null,        live: filled in by the CLI
     "version": state snapshot version | null, live: the one answers are decided on now
     "published": epoch seconds | null,        live: when that state reached the workers
     "file": state file name | null,           offline with --state FILE
     "note": why offline | null}
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype

from geodns.errors import GeodnsError
from geodns.routing import measured
from geodns.routing.context import RouteContext
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
    return geo.resolve(dynamic, dns.rdatatype.A, geo.locate(address, prefix, dynamic.service))


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


def scope_how(decision: Decision, merged: bool) -> str:
    """Why the ECS scope is what it is, in a few words."""
    if decision.measured and decision.by_network:
        return "the GeoIP network and the client's /24 or /56 at most: measured per network"
    if decision.measured:
        return "the GeoIP network: measured latency is per country and continent, not merged"
    if decision.by_network:
        return "the client's /24 or /56 at most: its hash decided (shedding or a canary)"
    if merged:
        return "merged: every address in it gets this answer"
    return "the GeoIP network; merged scopes appear once a server has built them"


def live_state(version: int, published: float) -> dict[str, Any]:
    """`state` of an explanation a running server decided on its published state."""
    return {
        "source": "live",
        "server": None,
        "version": version,
        "published": published,
        "file": None,
        "note": None,
    }


def offline_state(file: str | None, note: str | None) -> dict[str, Any]:
    """`state` of an explanation decided offline: every region up, or as in `file`."""
    return {
        "source": "offline",
        "server": None,
        "version": None,
        "published": None,
        "file": file,
        "note": note,
    }


def latency_json(geo: GeoAnswers, result: GeoResult, now: float) -> list[dict[str, Any]]:
    """Per region of the decision: the latency it was ordered by and its source (measured,
    table, distance, default order), with a measured estimate's samples and age."""
    decision = result.decision
    if decision.outcome is not None:
        return []
    service = decision.service
    ctx = RouteContext(decision.client, service, geo.state, geo.latency_table(service))
    return [
        {
            "region": r.region,
            "source": r.source,
            "ms": r.ms,
            "samples": r.samples,
            "age_s": None if r.newest is None else round(max(0.0, now - r.newest), 1),
            "area": r.area,
        }
        for r in measured.latencies(decision.regions, ctx)
    ]


def measured_json(geo: GeoAnswers, result: GeoResult, now: float) -> list[dict[str, Any]]:
    """Every measured estimate that holds for the client, used or not (too few samples,
    a region not among the candidates): why measurements did or did not decide."""
    client = result.decision.client
    record = client.record
    table = geo.state.measured
    rows = table.rows(
        client.address,
        record.country if record is not None else None,
        record.continent if record is not None else None,
    )
    least = table.settings.min_samples
    return [
        {"level": level, "area": area, "region": region, **est.to_json(now, least)}
        for level, area, row in rows
        for region, est in sorted(row.items())
    ]


def explain_body(
    result: GeoResult,
    merged: bool,
    state: dict[str, Any],
    health: dict[str, Any] | None = None,
    latency: list[dict[str, Any]] | None = None,
    measured_areas: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What /api/explain answers and `geodns explain --json` prints. `health`: per region,
    the live nodes' votes and their quorum (a running server's; none offline); `latency`:
    latency_json's; `measured_areas`: measured_json's."""
    body = decision_json(result.decision, result.scope_prefix)
    body["latency"] = latency or []
    body["measured"] = measured_areas or []
    body["explain"] = result.decision.explain_lines()
    body["scope"] = {"prefix": result.scope_prefix, "how": scope_how(result.decision, merged)}
    body["state"] = state
    body["health"] = health or {}
    return body


def state_line(state: dict[str, Any]) -> str:
    """Which region state an explanation shows, in one line."""
    if state.get("source") == "live":
        published = state.get("published")
        when = "" if published is None else f", published {_iso(published)}"
        where = state.get("server") or "a running server"
        return f"live server at {where} (state version {state.get('version')}{when})"
    shown = f"regions as in {state['file']}" if state.get("file") else "every region up"
    note = f" ({state['note']})" if state.get("note") else ""
    return f"offline, {shown}{note}"


def explain_lines(body: dict[str, Any], client: str) -> list[str]:
    """`geodns explain`'s text, the same for a live server's body and an offline one."""
    lines = [f"{body['service']} for {client}:", f"  state: {state_line(body['state'])}"]
    lines += [f"  {line}" for line in body["explain"]]
    latency = body.get("latency") or []
    areas = body.get("measured") or []
    if areas or any(row["source"] == "measured" for row in latency):
        # Only where measurements are in play: otherwise the order step's line says it all.
        lines.append("  latency per region (what ordered it):")
        for row in latency:
            ms = "" if row["ms"] is None else f" {row['ms']:.1f} ms"
            more = ""
            if row["source"] == "measured":
                more = f", {row['samples']} samples, {row['age_s']:g} s old, {row['area']}"
            lines.append(f"    {row['region']}:{ms} ({row['source']}{more})")
    if areas:
        lines.append("  measured estimates for this client (used from enough samples on):")
    for row in areas:
        enough = "" if row["enough"] else ", too few"
        lines.append(
            f"    {row['level']} {row['area']} -> {row['region']}: {row['ms']:.1f} ms"
            f" ({row['samples']} samples, {row['failed']} failed, {row['age_s']:g} s old{enough})"
        )
    scope = body["scope"]
    lines.append(f"  ECS scope: /{scope['prefix']} (of A answers; {scope['how']})")
    health = body.get("health") or {}
    if health:
        lines.append("  health checks, every live node's vote:")
    for region, quorum in health.items():
        votes = ", ".join(f"{node} {v['health']}" for node, v in quorum["votes"].items())
        lines.append(f"    {region}: {quorum['reason']} [{votes or 'no votes'}]")
    return lines


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
