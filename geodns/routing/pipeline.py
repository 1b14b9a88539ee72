"""route(client, service, state) -> Decision: the steps in order, each one's reason kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from geodns.geo.latency import LatencyTable
from geodns.geo.locate import Client
from geodns.health.state import StateSnapshot
from geodns.routing import capacity, health, measured, order, residency, version
from geodns.routing.context import Narrowed, RouteContext
from geodns.routing.select import select
from geodns.zones.model import Region, ResidencyRule, Service

Step = Callable[[tuple[Region, ...], RouteContext], Narrowed]
STEPS: tuple[tuple[str, Step], ...] = (
    ("residency", residency.narrow),
    ("health", health.narrow),
    ("version", version.narrow),
    ("capacity", capacity.narrow),
    ("order", order.narrow),
    ("measured", measured.narrow),
)


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    kept: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The ordered regions for one client network, or the outcome that replaced them."""

    service: Service
    client: Client
    regions: tuple[Region, ...]
    steps: tuple[StepRecord, ...]
    outcome: str | None = None  # refuse | servfail | nodata | answer, when failing closed
    # A step hashed the client network (shedding, canary): the decision holds for this
    # network only, and its scope must not be widened to others of the same class.
    by_network: bool = False
    fallback: tuple[str, ...] = ()  # outcome answer: the addresses to answer with
    rule: ResidencyRule | None = None  # the residency rule the client fell under
    # Measured latency could order the candidates (routing.measured): the decision holds
    # for the client's GeoIP network and bucket only, never for its whole class.
    measured: bool = False

    def select(self, family: int) -> tuple[tuple[Region, tuple[str, ...]], ...]:
        return select(self.regions, self.service.answers, family)

    def explain_lines(self) -> list[str]:
        record = self.client.record
        where = "unknown location"
        if record is not None:
            where = (
                ", ".join(x for x in (record.country, record.continent, record.subdivision) if x)
                or where
            )
        lines = [f"client {self.client.address} in network {self.client.network} ({where})"]
        lines += [f"{s.step}: {s.reason}" for s in self.steps]
        if self.outcome == "answer":
            lines.append(f"answer: fail closed with {', '.join(self.fallback)}")
        elif self.outcome is not None:
            lines.append(f"answer: {self.outcome}")
        else:
            for family, rdtype in ((4, "A"), (6, "AAAA")):
                chosen = self.select(family)
                text = "; ".join(f"{r.name} {' '.join(a)}" for r, a in chosen) or "NODATA"
                lines.append(f"select {rdtype}: {text}")
        return lines


def route(
    client: Client,
    service: Service,
    state: StateSnapshot,
    latency: LatencyTable | None = None,
    version_label: str | None = None,
) -> Decision:
    ctx = RouteContext(client, service, state, latency, version_label=version_label)
    regions = service.regions
    records = []
    by_network = False
    measured_ = False
    for name, step in STEPS:
        out = step(regions, ctx)
        by_network = by_network or out.by_network
        measured_ = measured_ or out.measured
        records.append(StepRecord(name, tuple(r.name for r in out.regions), out.reason))
        if out.rule is not None or out.demoted or out.no_room or out.full:
            ctx = replace(
                ctx,
                rule=out.rule or ctx.rule,
                demoted=out.demoted or ctx.demoted,
                no_room=out.no_room or ctx.no_room,
                full=out.full or ctx.full,
            )
        if out.outcome is not None:
            return Decision(
                service,
                client,
                (),
                tuple(records),
                out.outcome,
                by_network,
                out.fallback,
                ctx.rule,
                measured_,
            )
        regions = out.regions
    return Decision(
        service,
        client,
        regions,
        tuple(records),
        by_network=by_network,
        rule=ctx.rule,
        measured=measured_,
    )
