"""The rollout guard and the routing pipeline together, over random event sequences: plain
answers only reach approved versions while one is healthy, and begin keeps min_old."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.routing.pipeline import route
from geodns.versions import rollout as core
from geodns.versions.rollout import RolloutNotFound, RolloutRefused
from geodns.zones.model import Region
from tests.unit.routing.routing_helpers import KEY, SERVICE, client

SERVICE4 = replace(
    SERVICE,
    regions=(*SERVICE.regions, Region("sa-east-1", ("192.0.2.40",), -23.5, -46.6)),
    residency=(),
)
NAMES = [r.name for r in SERVICE4.regions]
OLD, NEW = "41", "42"

events = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.sampled_from(NAMES)),
        st.tuples(st.just("deploy"), st.sampled_from(NAMES)),
        st.tuples(
            st.just("health"), st.sampled_from(NAMES), st.sampled_from([Health.UP, Health.DOWN])
        ),
        st.tuples(st.just("validate")),
        st.tuples(st.just("abort")),
    ),
    max_size=25,
)


def snapshot(checked: dict[str, Health], versions: dict[str, str], drained: frozenset[str]):
    snap = StateSnapshot()
    for name in NAMES:
        forced = Health.DRAIN if name in drained else None
        health = forced or checked[name]
        snap = snap.with_region(
            KEY, name, RegionState(health, None, checked[name], forced, version=versions[name])
        )
    return snap


@settings(max_examples=300, deadline=None)
@given(events, st.integers(min_value=0, max_value=3), st.sampled_from(["US", "JP", "BR", None]))
def test_answers_stay_on_approved_versions_and_begin_keeps_min_old(
    sequence, min_old, country
) -> None:
    checked = dict.fromkeys(NAMES, Health.UP)
    versions = dict.fromkeys(NAMES, OLD)
    now = 1000.0
    rollout = core.start(
        SERVICE4, snapshot(checked, versions, frozenset()), NEW, min_old, None, now, None
    )
    for event in sequence:
        now += 10
        state = snapshot(checked, versions, core.drained_regions(rollout))
        kind = event[0]
        try:
            if kind == "begin":
                validated_before = rollout.status != "running"
                rollout = core.begin(rollout, SERVICE4, state, event[1], now)
                if not validated_before:
                    others_old = [
                        n
                        for n in NAMES
                        if n not in core.drained_regions(rollout)
                        and checked[n] is Health.UP
                        and versions[n] == OLD
                    ]
                    assert len(others_old) >= min_old
            elif kind == "validate":
                rollout = core.validate(rollout, now)
            elif kind == "abort":
                rollout = core.abort(rollout, now)
        except (RolloutRefused, RolloutNotFound):
            pass
        if kind == "deploy" and event[1] in core.drained_regions(rollout):
            versions[event[1]] = NEW
        elif kind == "health":
            checked[event[1]] = event[2]
        state = snapshot(checked, versions, core.drained_regions(rollout))
        rollout = core.observe(rollout, SERVICE4, state, now)
        state = snapshot(checked, versions, core.drained_regions(rollout))

        approved = core.approved_versions(rollout, core.current_version(SERVICE4, state))
        judged = state.with_versions(
            {
                KEY: ServiceVersions(
                    approved, core.canary_version(rollout), frozenset(versions.values())
                )
            }
        )
        decision = route(client(country), SERVICE4, judged)
        healthy_approved = [n for n in NAMES if judged.get(KEY, n).up and versions[n] in approved]
        if healthy_approved:
            assert decision.regions, decision.steps
            for region in decision.regions:
                assert versions[region.name] in approved, (approved, decision.steps)
                assert judged.get(KEY, region.name).up
