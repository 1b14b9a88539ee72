"""The rollout rules: start, begin under min_old, one region at a time, observe, validate by
hand or by soak, completion, abort, approved versions, JSON."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.routing.pipeline import route
from geodns.versions import rollout as core
from geodns.versions.rollout import (
    RegionStep,
    Rollout,
    RolloutNotFound,
    RolloutRefused,
    approved_versions,
    begin,
    drained_regions,
    from_json,
    may_deploy,
    observe,
    start,
    to_json,
)
from geodns.versions.serving import current_version, region_version
from geodns.zones.loader import load_zone_file
from geodns.zones.model import Region, Service
from tests.unit.routing.routing_helpers import client

NAMES = ("us-east-1", "eu-west-1", "ap-northeast-1", "sa-east-1")
KEY = "inference.example.com"


def service(n: int = 3, ttl: int = 30, static: str | None = None) -> Service:
    regions = tuple(
        Region(name, (f"192.0.2.{i + 1}",), version=static) for i, name in enumerate(NAMES[:n])
    )
    return Service(dns.name.from_text(KEY + "."), ttl, regions)


def on(
    version: str | None, health: Health = Health.UP, forced: Health | None = None
) -> RegionState:
    """A region whose checks say `health`, reporting `version`; `forced` as an operator
    (or the guard's wiring) sets it."""
    effective = forced if forced is not None else health
    return RegionState(effective, None, checked=health, forced=forced, version=version)


def snap(**regions: RegionState) -> StateSnapshot:
    out = StateSnapshot()
    for name, rs in regions.items():
        out = out.with_region(KEY, name.replace("_", "-"), rs)
    return out


OLD3 = snap(us_east_1=on("41"), eu_west_1=on("41"), ap_northeast_1=on("41"))


def refused(fn, *args) -> str:
    with pytest.raises(RolloutRefused) as info:
        fn(*args)
    assert str(info.value) == info.value.reason
    assert str(info.value).startswith("refused: ")
    return str(info.value)


def started(svc: Service | None = None, state: StateSnapshot = OLD3, **kw) -> Rollout:
    args = {"min_old": 2, "soak_seconds": None} | kw
    return start(svc or service(), state, "42", args["min_old"], args["soak_seconds"], 100.0, None)


# --- versions -------------------------------------------------------------------------------


def test_region_version_prefers_the_checks_then_config() -> None:
    svc = service(static="40")
    region = svc.regions[0]
    assert region_version(svc, region, StateSnapshot()) == "40"
    assert region_version(svc, region, snap(us_east_1=on("41"))) == "41"
    assert region_version(service(), service().regions[0], StateSnapshot()) is None


def test_current_version_is_what_most_healthy_regions_serve() -> None:
    svc = service(4)
    state = snap(
        us_east_1=on("41"), eu_west_1=on("42"), ap_northeast_1=on("42"), sa_east_1=on("41")
    )
    assert current_version(svc, state) == "41"  # a tie: the first listed region's
    down = state.with_region(KEY, "us-east-1", on("41", Health.DOWN))
    assert current_version(svc, down) == "42"
    drained = state.with_region(KEY, "sa-east-1", on("41", forced=Health.DRAIN))
    assert current_version(svc, drained) == "42"
    assert current_version(svc, StateSnapshot()) is None


def test_current_version_in_a_full_outage_counts_every_region() -> None:
    state = snap(
        us_east_1=on("41", Health.DOWN),
        eu_west_1=on("42", Health.DOWN),
        ap_northeast_1=on("42", Health.DOWN),
    )
    assert current_version(service(), state) == "42"


# --- start ----------------------------------------------------------------------------------


def test_start_takes_the_current_version_as_the_old_one() -> None:
    rollout = started(soak_seconds=60)
    assert (rollout.service, rollout.from_version, rollout.to) == (KEY, "41", "42")
    assert (rollout.status, rollout.started, rollout.min_old) == ("running", 100.0, 2)
    assert rollout.soak_seconds == 60.0 and not rollout.regions


def test_start_refusals_say_why() -> None:
    svc = service()
    running = started()
    assert refused(start, svc, OLD3, "43", 2, None, 1.0, running) == (
        f"refused: a rollout of {KEY} from 41 to 42 is already running: abort it or let it complete"
    )
    assert (
        refused(start, svc, OLD3, "41", 2, None, 1.0, None) == f"refused: {KEY} already serves v41"
    )
    assert "no region reports one" in refused(start, svc, StateSnapshot(), "42", 2, None, 1, None)
    assert refused(start, svc, OLD3, "42", 3, None, 1.0, None) == (
        f"refused: min_old is 3 but {KEY} has 3 regions: no region could ever begin"
        " (min_old at most 2)"
    )
    assert "min_old must be" in refused(start, svc, OLD3, "42", -1, None, 1.0, None)
    assert "soak_seconds must be" in refused(start, svc, OLD3, "42", 2, -5, 1.0, None)
    assert "soak_seconds must be" in refused(start, svc, OLD3, "42", 2, float("nan"), 1.0, None)
    assert "non-empty" in refused(start, svc, OLD3, " ", 2, None, 1.0, None)


def test_a_finished_rollout_does_not_block_the_next() -> None:
    done = core.abort(started(), 150.0)
    again = start(service(), OLD3, "43", 2, None, 200.0, done)
    assert (again.to, again.status) == ("43", "running")


# --- begin ----------------------------------------------------------------------------------


def test_begin_drains_for_one_ttl() -> None:
    svc = service(ttl=30)
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 200.0)
    step = rollout.regions["us-east-1"]
    assert step == RegionStep("draining", 200.0, 230.0, None)
    assert drained_regions(rollout) == {"us-east-1"}
    assert not may_deploy(step, 229.9) and may_deploy(step, 230.0)


def test_three_regions_min_old_two_allows_one_then_refuses_the_exact_message() -> None:
    svc = service()
    rollout = begin(started(), svc, OLD3, "us-east-1", 200.0)
    # us-east-1 deployed and healthy on 42: it is no longer old, so eu-west-1 would leave one.
    state = OLD3.with_region(KEY, "us-east-1", on("42"))
    rollout = observe(rollout, svc, state, 260.0)
    assert rollout.regions["us-east-1"].phase == "updated"
    assert refused(begin, rollout, svc, state, "eu-west-1", 270.0) == (
        "refused: only 1 other region healthy on v41, min_old is 2"
    )


def test_min_old_message_counts_plurals_and_down_regions() -> None:
    svc = service(4)
    state = snap(
        us_east_1=on("41"),
        eu_west_1=on("41"),
        ap_northeast_1=on("41", Health.DOWN),
        sa_east_1=on("41"),
    )
    rollout = started(svc, state, min_old=3)
    assert refused(begin, rollout, svc, state, "us-east-1", 1.0) == (
        "refused: only 2 other regions healthy on v41, min_old is 3"
    )


def test_draining_regions_do_not_count_as_old() -> None:
    svc = service(4)
    state = snap(
        us_east_1=on("41"), eu_west_1=on("41"), ap_northeast_1=on("41"), sa_east_1=on("41")
    )
    # A region this rollout drains reports 41 and its checks pass; yet it takes no traffic.
    rollout = begin(started(svc, state, min_old=2), svc, state, "us-east-1", 200.0)
    held = state.with_region(KEY, "us-east-1", on("41", forced=Health.DRAIN))
    # Made to look "up" on 41 even so: it must still not count.
    looks_up = state.with_region(KEY, "us-east-1", on("41"))
    for state_now in (held, looks_up):
        kept = core.serving_approved(rollout, svc, state_now)
        assert [r.name for r in kept] == list(NAMES[1:4])


def test_an_operator_drained_region_does_not_count_as_old() -> None:
    svc = service()
    state = OLD3.with_region(KEY, "ap-northeast-1", on("41", forced=Health.DRAIN))
    assert refused(begin, started(), svc, state, "us-east-1", 1.0) == (
        "refused: only 1 other region healthy on v41, min_old is 2"
    )


def test_one_region_at_a_time() -> None:
    svc = service(4)
    state = snap(
        us_east_1=on("41"), eu_west_1=on("41"), ap_northeast_1=on("41"), sa_east_1=on("41")
    )
    rollout = begin(started(svc, state, min_old=1), svc, state, "us-east-1", 200.0)
    assert refused(begin, rollout, svc, state, "eu-west-1", 210.0) == (
        "refused: us-east-1 is still in progress: it must report v42 healthy before the next"
        " region begins"
    )
    assert refused(begin, rollout, svc, state, "us-east-1", 210.0) == (
        "refused: us-east-1 is already draining (deploy after 1970-01-01T00:03:50Z)"
    )


def test_begin_refuses_updated_unknown_and_finished() -> None:
    svc = service()
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 200.0)
    state = OLD3.with_region(KEY, "us-east-1", on("42"))
    rollout = observe(rollout, svc, state, 240.0)
    assert refused(begin, rollout, svc, state, "us-east-1", 250.0) == (
        "refused: us-east-1 is already updated to v42"
    )
    with pytest.raises(RolloutNotFound, match="has no region 'mars-1'"):
        begin(rollout, svc, state, "mars-1", 250.0)
    aborted = core.abort(rollout, 260.0)
    assert refused(begin, aborted, svc, state, "eu-west-1", 270.0) == (
        f"refused: the rollout of {KEY} from 41 to 42 is aborted"
    )


def test_after_validation_min_old_counts_both_versions_and_the_drain_still_applies() -> None:
    svc = service(ttl=45)
    rollout = begin(started(), svc, OLD3, "us-east-1", 200.0)
    state = OLD3.with_region(KEY, "us-east-1", on("42"))
    rollout = core.validate(observe(rollout, svc, state, 250.0), 260.0)
    # us-east-1 on the validated 42 now counts beside ap-northeast-1 on 41: two.
    sick = state.with_region(KEY, "us-east-1", on("42", Health.DOWN))
    assert refused(begin, rollout, svc, sick, "eu-west-1", 300.0) == (
        "refused: only 1 other region healthy on v41 or v42, min_old is 2"
    )
    rollout = begin(rollout, svc, state, "eu-west-1", 300.0)
    assert rollout.regions["eu-west-1"] == RegionStep("draining", 300.0, 345.0)
    # Still one at a time after validation.
    assert "eu-west-1 is still in progress" in refused(
        begin, rollout, svc, state, "ap-northeast-1", 301.0
    )


# --- observe, validate, complete ------------------------------------------------------------


def test_a_draining_region_is_updated_when_its_checks_pass_on_the_new_version() -> None:
    svc = service()
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 200.0)
    # Deployed but its checks fail: not updated yet, even though it reports 42.
    failing = OLD3.with_region(KEY, "us-east-1", on("42", Health.DOWN, forced=Health.DRAIN))
    assert observe(rollout, svc, failing, 240.0).regions["us-east-1"].phase == "draining"
    # Still on 41: not updated.
    old = OLD3.with_region(KEY, "us-east-1", on("41", forced=Health.DRAIN))
    assert observe(rollout, svc, old, 240.0) == rollout
    # The guard's drain makes it `drain` in effect; its checks decide.
    good = OLD3.with_region(KEY, "us-east-1", on("42", forced=Health.DRAIN))
    after = observe(rollout, svc, good, 241.0)
    assert after.regions["us-east-1"] == RegionStep("updated", 200.0, 230.0, 241.0)
    assert drained_regions(after) == frozenset()
    assert core.changes(rollout, after) == [f"rollout of {KEY} to 42: us-east-1 updated"]


def test_a_region_without_checks_counts_by_its_configured_version() -> None:
    svc = service(static="41")
    rollout = begin(started(svc, StateSnapshot(), min_old=1), svc, StateSnapshot(), "us-east-1", 1)
    bumped = Service(
        svc.name, svc.ttl, (Region("us-east-1", ("192.0.2.1",), version="42"), *svc.regions[1:])
    )
    assert observe(rollout, bumped, StateSnapshot(), 50.0).regions["us-east-1"].phase == "updated"


def test_validation_by_hand_needs_an_updated_region() -> None:
    svc = service()
    rollout = started()
    assert "no region of inference.example.com serves v42 yet" in refused(
        core.validate, rollout, 1.0
    )
    rollout = begin(rollout, svc, OLD3, "us-east-1", 200.0)
    rollout = observe(rollout, svc, OLD3.with_region(KEY, "us-east-1", on("42")), 240.0)
    validated = core.validate(rollout, 250.0)
    assert (validated.status, validated.validated_at) == ("validated", 250.0)
    assert refused(core.validate, validated, 251.0) == (
        f"refused: the rollout of {KEY} from 41 to 42 is already validated"
    )


def test_validation_by_soak_counts_from_the_last_healthy_update() -> None:
    svc = service(4)
    state = snap(
        us_east_1=on("41"), eu_west_1=on("41"), ap_northeast_1=on("41"), sa_east_1=on("41")
    )
    rollout = begin(started(svc, state, min_old=2, soak_seconds=100), svc, state, "us-east-1", 0)
    state = state.with_region(KEY, "us-east-1", on("42"))
    rollout = observe(rollout, svc, state, 40.0)
    assert rollout.soak_since == 40.0
    rollout = begin(rollout, svc, state, "eu-west-1", 50.0)
    state = state.with_region(KEY, "eu-west-1", on("42"))
    rollout = observe(rollout, svc, state, 90.0)
    assert rollout.soak_since == 90.0  # a newly updated region starts the soak over
    assert observe(rollout, svc, state, 189.0).status == "running"
    # A failure mid-soak starts it over too.
    sick = state.with_region(KEY, "us-east-1", on("42", Health.DOWN))
    rollout = observe(rollout, svc, sick, 150.0)
    assert rollout.soak_since is None
    rollout = observe(rollout, svc, state, 160.0)
    assert rollout.soak_since == 160.0 and observe(rollout, svc, state, 259.0).status == "running"
    validated = observe(rollout, svc, state, 260.0)
    assert (validated.status, validated.validated_at) == ("validated", 260.0)
    assert core.changes(rollout, validated) == [
        f"rollout of {KEY} to 42: validated after 100 s soak"
    ]


def test_no_soak_means_validation_by_hand_only() -> None:
    svc = service()
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 0)
    state = OLD3.with_region(KEY, "us-east-1", on("42"))
    assert observe(observe(rollout, svc, state, 40.0), svc, state, 1e9).status == "running"


def run_to_completion(svc: Service, soak: float | None = None) -> tuple[Rollout, StateSnapshot]:
    state = OLD3
    rollout = started(svc, state, min_old=1, soak_seconds=soak)
    t = 100.0
    for name in NAMES[:3]:
        rollout = begin(rollout, svc, state, name, t)
        state = state.with_region(KEY, name, on("42"))
        rollout = observe(rollout, svc, state, t + 40)
        if rollout.status == "running" and soak is None:
            rollout = core.validate(rollout, t + 41)
        elif rollout.status == "running":
            rollout = observe(rollout, svc, state, t + 40 + soak)
        t += 100
    return rollout, state


def test_completion_when_every_region_is_updated() -> None:
    svc = service()
    rollout, state = run_to_completion(svc)
    assert (rollout.status, rollout.ended_at) == ("completed", 340.0)
    assert approved_versions(rollout, current_version(svc, state)) == {"42"}
    assert current_version(svc, state) == "42"
    assert refused(core.abort, rollout, 400.0) == (
        f"refused: the rollout of {KEY} from 41 to 42 is completed"
    )


def test_all_updated_before_validation_completes_once_validated() -> None:
    svc = service()
    state = OLD3
    rollout = started(svc, state, min_old=0)
    for i, name in enumerate(NAMES[:3]):
        rollout = begin(rollout, svc, state, name, 100.0 * i)
        state = state.with_region(KEY, name, on("42"))
        rollout = observe(rollout, svc, state, 100.0 * i + 40)
    assert rollout.status == "running"
    rollout = observe(core.validate(rollout, 500.0), svc, state, 501.0)
    assert (rollout.status, rollout.ended_at) == ("completed", 501.0)


def test_soak_and_completion_in_one_observation() -> None:
    svc = service()
    state = OLD3
    rollout = started(svc, state, min_old=0, soak_seconds=150)
    for i, name in enumerate(NAMES[:3]):
        rollout = begin(rollout, svc, state, name, 50.0 * i)
        state = state.with_region(KEY, name, on("42"))
        rollout = observe(rollout, svc, state, 50.0 * i + 40)
    assert rollout.status == "running" and rollout.soak_since == 140.0
    done = observe(rollout, svc, state, 290.0)
    assert (done.status, done.validated_at, done.ended_at) == ("completed", 290.0, 290.0)
    assert core.changes(rollout, done) == [
        f"rollout of {KEY} to 42: validated after 150 s soak",
        f"rollout of {KEY} to 42: completed, 42 is the current version",
    ]


def test_a_region_removed_from_the_config_while_draining_is_dropped() -> None:
    svc = service()
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 0)
    smaller = Service(svc.name, svc.ttl, svc.regions[1:])
    after = observe(rollout, smaller, OLD3, 10.0)
    assert "us-east-1" not in after.regions
    assert core.changes(rollout, after) == [f"rollout of {KEY} to 42: us-east-1 left the service"]


# --- abort and approved versions ------------------------------------------------------------


def test_abort_keeps_the_record_and_restores_the_old_version() -> None:
    svc = service()
    rollout = begin(started(), svc, OLD3, "us-east-1", 200.0)
    aborted = core.abort(rollout, 210.0)
    assert (aborted.status, aborted.ended_at) == ("aborted", 210.0)
    assert aborted.regions == rollout.regions  # the record stays
    assert drained_regions(aborted) == frozenset()
    assert approved_versions(aborted, "42") == {"41"}
    assert "is aborted" in refused(core.abort, aborted, 220.0)
    assert "is aborted" in refused(core.validate, aborted, 220.0)
    assert observe(aborted, svc, OLD3, 300.0) is aborted


def test_approved_versions_at_each_stage() -> None:
    svc = service()
    assert approved_versions(None, "41") == {"41"}
    assert approved_versions(None, None) == frozenset()
    rollout = started()
    assert approved_versions(rollout, "41") == {"41"}
    assert core.canary_version(rollout) == "42"
    rollout = begin(rollout, svc, OLD3, "us-east-1", 0)
    state = OLD3.with_region(KEY, "us-east-1", on("42"))
    rollout = observe(rollout, svc, state, 40.0)
    # Whatever most regions serve, a running rollout approves only the old version.
    assert approved_versions(rollout, "42") == {"41"}
    validated = core.validate(rollout, 50.0)
    assert approved_versions(validated, "41") == {"41", "42"}
    assert core.canary_version(validated) is None
    assert approved_versions(run_to_completion(svc)[0], "41") == {"42"}
    assert approved_versions(core.abort(validated, 60.0), "42") == {"41"}


# --- JSON and replies -----------------------------------------------------------------------


def test_json_round_trip() -> None:
    rollout, _ = run_to_completion(service(), soak=5)
    for r in (started(), rollout, core.abort(begin(started(), service(), OLD3, "eu-west-1", 3), 4)):
        data = json.loads(json.dumps(to_json(r)))
        assert from_json(data) == r


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "paused"}, "rollout: status: 'paused' is not one of running, validated"),
        ({"to": ""}, "rollout: to: must not be empty"),
        ({"min_old": True}, "rollout: min_old: True is not a whole number 0 or more"),
        ({"started": "yesterday"}, "rollout: started: 'yesterday' is not a number"),
        ({"soak_seconds": -1}, "rollout: soak_seconds: -1 is not a number 0 or more"),
        ({"regions": []}, "rollout: regions: [] is not an object of region -> step"),
        ({"regions": {"a": {"phase": "x"}}}, "rollout: regions.a.phase: 'x' is not one of"),
        (
            {"regions": {"a": {"phase": "updated", "begun": 1, "deploy_after": 2}}},
            "rollout: regions.a.updated_at: required when updated",
        ),
        (
            {"regions": {"a": {"phase": "draining", "begun": 1}}},
            "rollout: regions.a.deploy_after: missing",
        ),
    ],
)
def test_from_json_names_the_bad_field(change: dict, message: str) -> None:
    data = to_json(started()) | change
    with pytest.raises(ValueError) as info:
        from_json(data)
    assert str(info.value).startswith(message)


def test_from_json_needs_an_object_and_the_service() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        from_json([])
    data = to_json(started())
    del data["service"]
    with pytest.raises(ValueError, match="rollout: service: missing"):
        from_json(data)


def test_replies_carry_pending_regions_and_deploy_times() -> None:
    svc = service()
    rollout = begin(started(min_old=1), svc, OLD3, "us-east-1", 200.0)
    body = core.rollout_reply(rollout, svc, 210.0)
    assert body["pending"] == ["eu-west-1", "ap-northeast-1"] and body["server_time"] == 210.0
    region = core.region_reply(rollout, svc, "us-east-1", 210.0)
    assert (region["region"], region["phase"], region["deploy_after"]) == (
        "us-east-1",
        "draining",
        230.0,
    )
    assert (region["may_deploy"], region["wait_seconds"]) == (False, 20.0)
    assert core.region_reply(rollout, svc, "us-east-1", 231.0)["may_deploy"] is True
    pending = core.region_reply(rollout, svc, "eu-west-1", 231.0)
    assert (pending["phase"], pending["deploy_after"], pending["may_deploy"]) == (
        "pending",
        None,
        False,
    )
    assert (
        core.region_reply(core.abort(rollout, 231.0), svc, "us-east-1", 240.0)["may_deploy"]
        is False
    )
    with pytest.raises(RolloutNotFound):
        core.region_reply(rollout, svc, "mars-1", 1.0)


# --- the min_old property -------------------------------------------------------------------

HEALTHS = st.sampled_from([Health.UP, Health.UP, Health.DOWN, Health.DRAIN])
VERSIONS = st.sampled_from(["41", "41", "42", "40", None])


@st.composite
def scenario(draw: st.DrawFn):
    n = draw(st.integers(2, 4))
    svc = service(n)
    names = [r.name for r in svc.regions]
    first = {name: on("41") for name in names}
    min_old = draw(st.integers(0, n - 1))
    # Events: a region's state changes, or someone asks to begin a region.
    events = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("state"), st.sampled_from(names), HEALTHS, VERSIONS),
                st.tuples(st.just("begin"), st.sampled_from(names)),
                st.tuples(st.just("observe")),
            ),
            max_size=25,
        )
    )
    return svc, first, min_old, events


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_begin_before_validation_never_leaves_fewer_than_min_old_on_the_old_version(case) -> None:
    svc, first, min_old, events = case
    state = StateSnapshot()
    for name, rs in first.items():
        state = state.with_region(KEY, name, rs)
    rollout = start(svc, state, "42", min_old, None, 0.0, None)
    t = 0.0
    for event in events:
        t += 1
        if event[0] == "state":
            _, name, health, version = event
            # The guard's wiring keeps a draining region forced to drain.
            forced = Health.DRAIN if name in drained_regions(rollout) else None
            if health is Health.DRAIN:
                forced, health = Health.DRAIN, Health.UP
            state = state.with_region(KEY, name, on(version, health, forced))
        elif event[0] == "observe":
            rollout = observe(rollout, svc, state, t)
        else:
            healthy_old_before = _old_and_serving(rollout, svc, state)
            try:
                after = begin(rollout, svc, state, event[1], t)
            except RolloutRefused:
                continue
            # Whenever a begin is allowed, min_old regions not drained stay healthy on old.
            left = _old_and_serving(after, svc, state)
            assert len(left) >= min_old, (healthy_old_before, left)
            assert drained_regions(after) - drained_regions(rollout) == {event[1]}
            rollout = after
            state = state.with_region(
                KEY, event[1], on(state.get(KEY, event[1]).version, forced=Health.DRAIN)
            )
        assert rollout.status == "running"
        assert len(drained_regions(rollout)) <= 1


def _old_and_serving(rollout: Rollout, svc: Service, state: StateSnapshot) -> list[str]:
    return [
        r.name
        for r in svc.regions
        if r.name not in drained_regions(rollout)
        and state.get(KEY, r.name).up
        and region_version(svc, r, state) == rollout.from_version
    ]


# --- residency rules ------------------------------------------------------------------------

FIVE = ("us-east-1", "eu-west-1", "eu-central-1", "ap-northeast-1", "sa-east-1")


def zoned(residency: str) -> Service:
    """A literal five-region service of a real zone file, with `residency` (YAML lines)."""
    regions = "".join(
        f"      {name}: {{addresses: [192.0.2.{i}], location: {{lat: 0, lon: 0}}}}\n"
        for i, name in enumerate(FIVE, 1)
    )
    text = (
        "zone: example.com\nsoa: {mname: ns1, rname: hostmaster}\nns: [ns1]\n"
        "records: {ns1: {A: 192.0.2.53}}\nservices:\n  inference:\n    ttl: 30\n"
        f"    regions:\n{regions}    residency:\n{residency}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "example.com.yaml"
        path.write_text(text)
        (svc,) = load_zone_file(path).services.values()
    return svc


EEA = zoned(
    "      - {clients: {group: EEA}, regions: [eu-west-1, eu-central-1], when_none: refuse}\n"
)
ALL_OLD = snap(**{n.replace("-", "_"): on("41") for n in FIVE})


def deployed(rollout: Rollout, svc: Service, state: StateSnapshot, region: str, t: float):
    """Begin `region`, deploy 42 there, and observe it updated."""
    rollout = begin(rollout, svc, state, region, t)
    state = state.with_region(KEY, region, on("42"))
    rollout = observe(rollout, svc, state, t + 40)
    assert rollout.regions[region].phase == "updated"
    return rollout, state


def eea_client_gets(svc: Service, rollout: Rollout, state: StateSnapshot) -> list[str]:
    judged = state.with_versions(
        {KEY: ServiceVersions(approved_versions(rollout, "41"), core.canary_version(rollout))}
    )
    for name in drained_regions(rollout):
        judged = judged.with_region(KEY, name, on(state.get(KEY, name).version, Health.DRAIN))
    decision = route(client("DE"), svc, judged)
    return [f"{r.name} {state.get(KEY, r.name).version}" for r in decision.regions] or [
        str(decision.outcome)
    ]


def test_the_issue_eea_rule_keeps_an_old_region_whatever_other_regions_do() -> None:
    # Issue 11 item 4: eu-central-1 updated to the unvalidated 42, then `begin eu-west-1`
    # was allowed because three regions outside the EEA were still on 41, and EEA clients
    # got only 42.
    rollout = started(EEA, ALL_OLD, min_old=2)
    rollout, state = deployed(rollout, EEA, ALL_OLD, "eu-central-1", 100.0)
    assert eea_client_gets(EEA, rollout, state) == ["eu-west-1 41"]
    assert refused(begin, rollout, EEA, state, "eu-west-1", 200.0) == (
        "refused: residency rule 0 (group EEA) keeps no healthy region on v41 besides"
        " eu-west-1 (eu-central-1 on v42, not validated yet): its clients would be answered"
        " from eu-central-1 on a version not approved, and the guard never drains a rule's"
        " last region, whatever its min_old (1); validate v42 first, and eu-central-1 will count"
    )
    # Once 42 is validated, eu-central-1 serves the rule's clients while eu-west-1 updates.
    rollout = core.validate(rollout, 210.0)
    rollout = begin(rollout, EEA, state, "eu-west-1", 220.0)
    assert eea_client_gets(EEA, rollout, state) == ["eu-central-1 42"]


def test_the_issue_demo_one_eu_region_is_never_drained_by_the_guard() -> None:
    # Issue 11 item 4, in the demo: after validation the guard drained eu-west-1, the only
    # EU region of the example zone, and GB clients were refused while it stayed drained.
    svc = zoned("      - {clients: {continent: EU}, regions: [eu-west-1], when_none: refuse}\n")
    rollout = started(svc, ALL_OLD, min_old=2)
    rollout, state = deployed(rollout, svc, ALL_OLD, "us-east-1", 100.0)
    message = refused(begin, rollout, svc, state, "eu-west-1", 200.0)
    assert message == (
        "refused: eu-west-1 is the only region of residency rule 0 (continent EU), and the"
        " guard never drains a rule's last region: add a second region to the rule, or update"
        " eu-west-1 outside the guard once v42 is validated: drain it yourself (the rule's"
        " clients fail closed (refuse) until you give it back), deploy v42; the rollout counts"
        " it updated once it reports v42 healthy"
    )
    validated = core.validate(rollout, 210.0)
    assert "update eu-west-1 outside the guard now: drain it yourself" in refused(
        begin, validated, svc, state, "eu-west-1", 220.0
    )
    assert eea_client_gets(svc, validated, state) == ["eu-west-1 41"]


def test_a_region_updated_outside_the_guard_counts_and_completes_the_rollout() -> None:
    svc = zoned("      - {clients: {continent: EU}, regions: [eu-west-1]}\n")
    rollout = started(svc, ALL_OLD, min_old=1)
    rollout, state = deployed(rollout, svc, ALL_OLD, "us-east-1", 100.0)
    rollout = core.validate(rollout, 150.0)
    for i, name in enumerate(("eu-central-1", "ap-northeast-1", "sa-east-1")):
        rollout, state = deployed(rollout, svc, state, name, 200.0 + 100 * i)
    assert rollout.status == "validated"
    # The operator drains eu-west-1 by hand (not the guard), deploys, and it reports 42.
    state = state.with_region(KEY, "eu-west-1", on("42", forced=Health.DRAIN))
    done = observe(rollout, svc, state, 600.0)
    assert done.regions["eu-west-1"] == RegionStep("updated", 600.0, 600.0, 600.0)
    assert (done.status, done.ended_at) == ("completed", 600.0)
    assert core.changes(rollout, done) == [
        f"rollout of {KEY} to 42: eu-west-1 updated outside the guard (never begun)",
        f"rollout of {KEY} to 42: completed, 42 is the current version",
    ]


def test_a_rule_with_min_old_two_keeps_two() -> None:
    svc = zoned(
        "      - {clients: {group: EEA}, regions: [eu-west-1, eu-central-1, sa-east-1],"
        " min_old: 2}\n"
    )
    rollout = started(svc, ALL_OLD, min_old=1)
    rollout, state = deployed(rollout, svc, ALL_OLD, "us-east-1", 100.0)
    state = state.with_region(KEY, "sa-east-1", on("41", Health.DOWN))
    assert refused(begin, rollout, svc, state, "eu-west-1", 200.0) == (
        "refused: residency rule 0 (group EEA) keeps only 1 healthy region on v41 besides"
        " eu-west-1 (eu-central-1), its min_old is 2"
    )
    state = state.with_region(KEY, "sa-east-1", on("41"))
    assert drained_regions(begin(rollout, svc, state, "eu-west-1", 210.0)) == {"eu-west-1"}


def test_a_rule_too_small_for_its_min_old_says_so() -> None:
    svc = zoned("      - {clients: {group: EEA}, regions: [eu-west-1, eu-central-1], min_old: 2}\n")
    assert refused(begin, started(svc, ALL_OLD), svc, ALL_OLD, "eu-west-1", 1.0) == (
        "refused: residency rule 0 (group EEA) keeps only 1 healthy region on v41 besides"
        " eu-west-1 (eu-central-1), its min_old is 2; with 2 regions in the rule the guard can"
        " drain none of them (min_old at most 1, or add a region to the rule)"
    )


def test_min_old_zero_never_drains_a_rules_last_healthy_region() -> None:
    svc = zoned(
        "      - {clients: {group: EEA}, regions: [eu-west-1, eu-central-1], min_old: 0,"
        " when_none: nodata}\n"
    )
    rollout = started(svc, ALL_OLD, min_old=0)
    for health, forced, why in (
        (Health.DOWN, None, "eu-central-1 down"),
        (Health.UP, Health.DRAIN, "eu-central-1 drained"),
        (Health.UP, Health.DOWN, "eu-central-1 down"),
    ):
        state = ALL_OLD.with_region(KEY, "eu-central-1", on("41", health, forced))
        assert refused(begin, rollout, svc, state, "eu-west-1", 1.0) == (
            f"refused: residency rule 0 (group EEA) keeps no healthy region on v41 besides"
            f" eu-west-1 ({why}): its clients would fail closed (nodata), and the guard never"
            " drains a rule's last region, whatever its min_old (0); bring another region of"
            " the rule back healthy on v41 first"
        )
    assert begin(rollout, svc, ALL_OLD, "eu-west-1", 1.0).regions["eu-west-1"].phase == ("draining")


def test_after_validation_an_updated_rule_region_may_stand_in_for_the_old_one() -> None:
    rollout = started(EEA, ALL_OLD, min_old=1)
    rollout, state = deployed(rollout, EEA, ALL_OLD, "eu-central-1", 100.0)
    rollout = core.validate(rollout, 150.0)
    sick = state.with_region(KEY, "eu-central-1", on("42", Health.DOWN))
    assert refused(begin, rollout, EEA, sick, "eu-west-1", 200.0) == (
        "refused: residency rule 0 (group EEA) keeps no healthy region on v41 or v42 besides"
        " eu-west-1 (eu-central-1 down): its clients would fail closed (refuse), and the guard"
        " never drains a rule's last region, whatever its min_old (1); bring another region"
        " of the rule back healthy on v41 or v42 first"
    )
    assert drained_regions(begin(rollout, EEA, state, "eu-west-1", 200.0)) == {"eu-west-1"}


def test_rules_without_the_region_do_not_hold_it() -> None:
    svc = zoned("      - {clients: {continent: EU}, regions: [eu-west-1]}\n")
    rollout = started(svc, ALL_OLD, min_old=2)
    assert drained_regions(begin(rollout, svc, ALL_OLD, "eu-central-1", 1.0)) == {"eu-central-1"}


def test_every_rule_holding_the_region_is_checked() -> None:
    svc = zoned(
        "      - {clients: {continent: EU}, regions: [eu-west-1, eu-central-1]}\n"
        "      - {clients: {continent: AF}, regions: [eu-west-1, sa-east-1]}\n"
    )
    state = ALL_OLD.with_region(KEY, "sa-east-1", on("41", Health.DOWN))
    assert refused(begin, started(svc, ALL_OLD), svc, state, "eu-west-1", 1.0).startswith(
        "refused: residency rule 1 (continent AF) keeps no healthy region on v41 besides"
        " eu-west-1 (sa-east-1 down)"
    )
