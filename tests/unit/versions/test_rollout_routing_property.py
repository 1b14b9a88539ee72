"""The rollout guard and the routing pipeline together, over random zones with residency
rules and random event sequences: no client of any rule is refused, or sent to a version
not approved, because of a step the guard took; begin keeps min_old per rule and globally;
plain answers only reach approved versions while one is healthy."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.geo.locate import Client
from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.routing.pipeline import Decision, route
from geodns.versions import rollout as core
from geodns.versions.rollout import Rollout, RolloutNotFound, RolloutRefused
from geodns.versions.serving import current_version
from geodns.zones.model import ClientMatch, FailClosed, Region, ResidencyRule, Service
from tests.unit.routing.routing_helpers import KEY, SERVICE, client

REGIONS = (
    Region("us-east-1", ("192.0.2.10",), 38.9, -77.0),
    Region("eu-west-1", ("192.0.2.20",), 53.3, -6.3),
    Region("eu-central-1", ("192.0.2.21",), 50.1, 8.7),
    Region("ap-northeast-1", ("192.0.2.30",), 35.7, 139.7),
    Region("sa-east-1", ("192.0.2.40",), -23.5, -46.6),
)
NAMES = [r.name for r in REGIONS]
OLD, NEW = "41", "42"
# Rules hold disjoint client areas (the loader refuses overlapping ones): a continent, or
# one country of it, and the client routing tests place there.
AREAS = (("EU", "GB"), ("NA", "US"), ("SA", "BR"), ("AS", "JP"), ("OC", "AU"), ("AF", "ZA"))


@dataclass(frozen=True)
class Case:
    service: Service
    clients: tuple[tuple[ResidencyRule | None, Client], ...]  # None: no rule holds it


@st.composite
def cases(draw: st.DrawFn) -> Case:
    areas = draw(st.permutations(AREAS))
    count = draw(st.integers(0, 3))
    unlocated = draw(st.integers(-1, count - 1)) if count else -1
    rules = []
    for i, (continent, country) in enumerate(areas[:count]):
        members = draw(st.sets(st.sampled_from(NAMES), min_size=1))
        if draw(st.booleans()):
            match = ClientMatch(frozenset({continent}), description=f"continent {continent}")
        else:
            match = ClientMatch(countries=frozenset({country}), description=f"country {country}")
        match = replace(match, unlocated=i == unlocated)
        rules.append(
            ResidencyRule(
                match,
                tuple(n for n in NAMES if n in members),
                FailClosed(draw(st.sampled_from(["refuse", "nodata"]))),
                draw(st.integers(0, 2)),
                i,
            )
        )
    service = replace(SERVICE, regions=REGIONS, residency=tuple(rules), default_order=())
    clients: list[tuple[ResidencyRule | None, Client]] = []
    for rule, (_, country) in zip(rules, areas, strict=False):
        clients.append((rule, client(country)))
        if rule.clients.unlocated:
            clients.append((rule, client(None)))
    clients += [(None, client(country)) for _, country in areas[count:]]
    if unlocated < 0:
        clients.append((None, client(None)))
    return Case(service, tuple(clients))


# ("begin", region, True): deployed at once, so that more sequences get to validation.
BEGIN = st.tuples(st.just("begin"), st.sampled_from(NAMES), st.booleans())
DEPLOY = st.tuples(st.just("deploy"))  # the region the guard drains, if any
events = st.lists(
    st.one_of(
        BEGIN,
        DEPLOY,
        BEGIN,
        DEPLOY,
        st.tuples(
            st.just("health"), st.sampled_from(NAMES), st.sampled_from([Health.UP, Health.DOWN])
        ),
        # An operator drains a region (True) or gives it back (False); one it drains may be
        # deployed by hand: that is how a rule's only region is updated.
        st.tuples(st.just("operator"), st.sampled_from(NAMES), st.booleans()),
        st.tuples(st.just("deploy"), st.sampled_from(NAMES)),
        st.tuples(st.just("validate")),
        st.tuples(st.just("validate")),
        # Rarer, or few sequences would get past an abort: ("abort", 1..3) is a clock tick.
        st.tuples(st.just("abort"), st.integers(0, 3)),
    ),
    max_size=30,
)


class World:
    """What the regions do (checks, versions, an operator's drains), and the guard's drains."""

    def __init__(self) -> None:
        self.checked = dict.fromkeys(NAMES, Health.UP)
        self.versions = dict.fromkeys(NAMES, OLD)
        self.operator: set[str] = set()

    def state(self, rollout: Rollout | None) -> StateSnapshot:
        drained = core.drained_regions(rollout) | self.operator
        snap = StateSnapshot()
        for name in NAMES:
            forced = Health.DRAIN if name in drained else None
            rs = RegionState(forced or self.checked[name], None, self.checked[name], forced)
            snap = snap.with_region(KEY, name, replace(rs, version=self.versions[name]))
        return snap


def judged(service: Service, rollout: Rollout, state: StateSnapshot) -> StateSnapshot:
    """The state as the control plane publishes it: with the versions plain answers reach."""
    approved = core.approved_versions(rollout, current_version(service, state))
    versions = ServiceVersions(approved, core.canary_version(rollout), frozenset({OLD, NEW}))
    return state.with_versions({KEY: versions})


def served(decision: Decision, state: StateSnapshot) -> bool:
    """Answered from healthy regions on approved versions only."""
    approved = state.versions[KEY].approved
    return bool(decision.regions) and all(
        state.get(KEY, r.name).up and state.get(KEY, r.name).version in approved
        for r in decision.regions
    )


def decisions(case: Case, rollout: Rollout, state: StateSnapshot) -> list[Decision]:
    seen = judged(case.service, rollout, state)
    return [route(c, case.service, seen) for _, c in case.clients]


def assert_not_worse(
    case: Case,
    kind: str,
    before: tuple[Rollout, StateSnapshot],
    after: tuple[Rollout, StateSnapshot],
) -> None:
    """No rule client that was served before a step of the guard is worse off after it."""
    old = decisions(case, *before)
    new = decisions(case, *after)
    seen_old, seen_new = judged(case.service, *before), judged(case.service, *after)
    for (rule, c), was, now in zip(case.clients, old, new, strict=True):
        if rule is None or not served(was, seen_old):
            continue
        where = (kind, c.record and c.record.country, rule, was.steps, now.steps)
        if kind == "abort":
            # An abort is never refused (it is the way back from a bad version): it takes the
            # new version out of plain answers, so a rule whose healthy regions were all
            # updated gets them as routing's fallback. It never leaves the rule refused,
            # and a rule served from old regions keeps them.
            assert now.regions, where
            if any(seen_old.get(KEY, r.name).version == OLD for r in was.regions):
                assert served(now, seen_new), where
        else:
            assert served(now, seen_new), where


def serving(world: World, rollout: Rollout, names: tuple[str, ...] | list[str]) -> list[str]:
    """Of `names`, the regions that keep plain answers (counted for min_old): not drained,
    healthy, on the old version (before validation) or either version (after)."""
    ok = {OLD, NEW} if rollout.status == "validated" else {OLD}
    state = world.state(rollout)
    return [n for n in names if state.get(KEY, n).up and world.versions[n] in ok]


@settings(max_examples=500, deadline=None)
@given(cases(), events, st.integers(min_value=0, max_value=3))
def test_the_guard_never_strands_a_residency_rule_and_keeps_min_old(
    case: Case, sequence: list[tuple], min_old: int
) -> None:
    svc = case.service
    world = World()
    now = 1000.0
    rollout = core.start(svc, world.state(None), NEW, min_old, None, now, None)
    for event in sequence:
        now += 10
        kind = event[0]
        before = (rollout, world.state(rollout))
        try:
            if kind == "begin":
                status = rollout.status
                rollout = core.begin(rollout, svc, before[1], event[1], now)
                # min_old holds globally and in every rule holding the region.
                assert len(serving(world, rollout, NAMES)) >= min_old
                for rule in svc.residency:
                    if event[1] in rule.regions:
                        kept = serving(world, rollout, rule.regions)
                        assert len(kept) >= max(rule.min_old, 1), (status, rule, kept)
            elif kind == "validate":
                rollout = core.validate(rollout, now)
            elif kind == "abort" and event[1] == 0:
                rollout = core.abort(rollout, now)
        except (RolloutRefused, RolloutNotFound):
            pass
        if kind in ("begin", "validate", "abort"):
            assert_not_worse(case, kind, before, (rollout, world.state(rollout)))
        # The world moves: a deploy reaches drained regions only, the guard's or an
        # operator's (updating a rule's only region by hand is how it is done).
        if (kind == "deploy" and len(event) == 1) or (kind == "begin" and event[2]):
            for name in core.drained_regions(rollout):
                world.versions[name] = NEW
        elif kind == "deploy" and event[1] in world.operator:
            world.versions[event[1]] = NEW
        elif kind == "health":
            world.checked[event[1]] = event[2]
        elif kind == "operator":
            (world.operator.add if event[2] else world.operator.discard)(event[1])
        # The guard observes the new state, as the control plane does on every change.
        before = (rollout, world.state(rollout))
        rollout = core.observe(rollout, svc, before[1], now)
        assert_not_worse(case, "observe", before, (rollout, world.state(rollout)))

        state = judged(svc, rollout, world.state(rollout))
        approved = state.versions[KEY].approved
        healthy_approved = [
            n for n in NAMES if state.get(KEY, n).up and world.versions[n] in approved
        ]
        for rule, c in case.clients:
            if rule is None and healthy_approved:
                assert served(route(c, svc, state), state)
