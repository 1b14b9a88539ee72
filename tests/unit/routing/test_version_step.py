"""The version step: approved versions, pins, canaries and version-named hosts."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from geodns.health.state import Health, RegionState, ServiceVersions, StateSnapshot
from geodns.routing.pipeline import route
from geodns.zones.model import VersionPolicy, version_label
from tests.unit.routing.routing_helpers import KEY, SERVICE, client, state


def on(version: str | None, health: Health = Health.UP) -> RegionState:
    return RegionState(health, None, checked=health, version=version)


def regions_for(decision) -> list[str]:
    return [r.name for r in decision.regions]


def step(decision):
    return next(s for s in decision.steps if s.step == "version")


def test_no_versions_reported_changes_nothing() -> None:
    decision = route(client("US"), SERVICE, state())
    assert regions_for(decision)[0] == "us-east-1"
    assert step(decision).reason == "no region reports a model version"


def test_consistent_keeps_the_version_most_regions_serve() -> None:
    snap = state(us_east_1=on("43"), eu_west_1=on("42"), ap_northeast_1=on("42"))
    decision = route(client("US"), SERVICE, snap)
    assert regions_for(decision) == ["eu-west-1", "ap-northeast-1"]
    assert step(decision).reason == (
        "approved version 42: eu-west-1, ap-northeast-1; left out us-east-1 (43)"
    )


def test_a_region_without_a_version_is_left_out_while_others_report() -> None:
    snap = state(us_east_1=on(None), eu_west_1=on("42"), ap_northeast_1=on("42"))
    decision = route(client("US"), SERVICE, snap)
    assert "us-east-1" not in regions_for(decision)


def test_unapproved_regions_answer_when_no_approved_one_is_healthy() -> None:
    snap = state(
        us_east_1=on("43"),
        eu_west_1=on("42", Health.DOWN),
        ap_northeast_1=on("42", Health.DOWN),
    )
    judged = snap.with_versions({KEY: ServiceVersions(frozenset({"42"}))})
    decision = route(client("US"), SERVICE, judged)
    assert regions_for(decision) == ["us-east-1"]
    assert "no healthy region on an approved version (42)" in step(decision).reason


def test_a_validated_rollout_approves_both_versions() -> None:
    snap = state(us_east_1=on("43"), eu_west_1=on("42"), ap_northeast_1=on("42"))
    judged = snap.with_versions({KEY: ServiceVersions(frozenset({"42", "43"}))})
    assert regions_for(route(client("US"), SERVICE, judged))[0] == "us-east-1"


def test_canary_share_of_networks_gets_the_new_version() -> None:
    service = replace(SERVICE, version=VersionPolicy(canary_share=0.25))
    snap = state(us_east_1=on("42"), eu_west_1=on("42"), ap_northeast_1=on("43"))
    judged = snap.with_versions({KEY: ServiceVersions(frozenset({"42"}), canary="43")})
    firsts = [
        route(client("US", f"10.{i // 256}.{i % 256}.0/24"), service, judged).regions[0].name
        for i in range(2000)
    ]
    share = firsts.count("ap-northeast-1") / len(firsts)
    assert 0.2 < share < 0.3
    # The same network always lands on the same side.
    again = route(client("US", "10.0.7.0/24"), service, judged).regions[0].name
    assert again == firsts[7]


def test_pin_keeps_one_version_and_fails_as_configured() -> None:
    snap = state(us_east_1=on("42"), eu_west_1=on("43"), ap_northeast_1=on("42"))
    pinned = replace(SERVICE, version=VersionPolicy("pin", "43", when_none="servfail"))
    assert regions_for(route(client("US"), pinned, snap)) == ["eu-west-1"]
    gone = state(us_east_1=on("42"), eu_west_1=on("43", Health.DOWN), ap_northeast_1=on("42"))
    decision = route(client("US"), pinned, gone)
    assert decision.outcome == "servfail"
    loose = replace(SERVICE, version=VersionPolicy("pin", "43"))
    assert regions_for(route(client("US"), loose, gone))[0] == "us-east-1"


def test_version_hosts_reach_only_that_version_and_never_cross_residency() -> None:
    snap = state(us_east_1=on("43"), eu_west_1=on("42"), ap_northeast_1=on("43"))
    decision = route(client("US"), SERVICE, snap, version_label="v43")
    assert regions_for(decision) == ["us-east-1", "ap-northeast-1"]
    eu = route(client("DE"), SERVICE, snap, version_label="v43")
    assert eu.outcome == "nodata"  # the EU rule allows eu-west-1 only, which runs 42


def test_any_ignores_versions() -> None:
    service = replace(SERVICE, version=VersionPolicy("any"))
    snap = state(us_east_1=on("43"), eu_west_1=on("42"), ap_northeast_1=on("42"))
    assert regions_for(route(client("US"), service, snap))[0] == "us-east-1"


def test_version_labels() -> None:
    assert version_label("42") == "v42"
    assert version_label("1.2.3") == "v1-2-3"
    assert version_label("Llama-3.1_8B") == "vllama-3-1-8b"


@given(
    st.lists(st.sampled_from(["41", "42", "43", None]), min_size=3, max_size=3),
    st.lists(st.sampled_from(list(Health)), min_size=3, max_size=3),
    st.frozensets(st.sampled_from(["41", "42", "43"]), min_size=1),
)
def test_plain_answers_stay_on_approved_versions_while_one_is_healthy(
    versions: list[str | None], healths: list[Health], approved: frozenset[str]
) -> None:
    snap = StateSnapshot()
    for region, version, health in zip(SERVICE.regions, versions, healths, strict=True):
        snap = snap.with_region(KEY, region.name, on(version, health))
    snap = snap.with_versions({KEY: ServiceVersions(approved)})
    decision = route(client("US"), SERVICE, snap)
    healthy_approved = [
        r.name
        for r, v, h in zip(SERVICE.regions, versions, healths, strict=True)
        if h is Health.UP and v in approved
    ]
    if healthy_approved:
        assert set(regions_for(decision)) == set(healthy_approved)
