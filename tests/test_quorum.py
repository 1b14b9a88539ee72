"""The fleet's quorum over its nodes' votes: literal cases from issue 12, then properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.health.quorum import Verdict, Vote, decide
from geodns.health.state import Health
from geodns.zones.model import Quorum

UP, DOWN = Health.UP, Health.DOWN
NOW = 1000.0
MAX_AGE = 15.0  # three probe intervals of 5 s
MAJORITY, ANY, LOCAL = Quorum.MAJORITY, Quorum.ANY, Quorum.LOCAL


def vote(
    node: str,
    health: Health,
    at: float = NOW,
    utilization: float | None = None,
    version: str | None = None,
) -> Vote:
    return Vote(node, health, utilization, version, at)


def run(policy: Quorum, own: Vote | None, *others: Vote, now: float = NOW) -> Verdict:
    return decide(policy, own, others, now, MAX_AGE)


# -- Literal cases ---------------------------------------------------------------------------


def test_one_node_with_a_broken_path_leaves_the_region_up_under_majority() -> None:
    # Node a cannot reach the region (its probes fail); b and c reach it.
    verdict = run(MAJORITY, vote("a", DOWN), vote("b", UP), vote("c", UP))
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 2, 1)
    assert verdict.describe() == "up: 1 of 3 nodes see it down, no majority"
    # And b and c, holding the same votes, agree.
    assert run(MAJORITY, vote("b", UP), vote("a", DOWN), vote("c", UP)) == verdict


def test_a_region_two_of_three_nodes_see_down_is_down() -> None:
    verdict = run(MAJORITY, vote("a", DOWN), vote("b", DOWN), vote("c", UP))
    assert (verdict.checked, verdict.up, verdict.down) == (DOWN, 1, 2)
    assert verdict.describe() == "down: 2 of 3 nodes see it down (majority)"


def test_a_tie_keeps_the_region_up() -> None:
    verdict = run(MAJORITY, vote("a", DOWN), vote("b", UP))
    assert verdict.checked is UP
    assert verdict.describe() == "up: 1 of 2 nodes see it down, no majority"
    four = run(MAJORITY, vote("a", DOWN), vote("b", UP), vote("c", DOWN), vote("d", UP))
    assert (four.checked, four.up, four.down) == (UP, 2, 2)


def test_unanimous_up() -> None:
    verdict = run(MAJORITY, vote("a", UP), vote("b", UP), vote("c", UP))
    assert verdict.checked is UP
    assert verdict.describe() == "up: 3 of 3 nodes see it up"
    assert run(MAJORITY, vote("a", UP)).describe() == "up: 1 of 1 node sees it up"


def test_any_one_down_vote_is_down() -> None:
    verdict = run(ANY, vote("a", UP), vote("b", DOWN), vote("c", UP))
    assert (verdict.checked, verdict.up, verdict.down) == (DOWN, 2, 1)
    assert verdict.describe() == "down: 1 of 3 nodes see it down (any)"
    assert run(ANY, vote("a", UP), vote("b", UP)).checked is UP


def test_local_ignores_the_others() -> None:
    verdict = run(LOCAL, vote("a", UP), vote("b", DOWN), vote("c", DOWN))
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 1, 0)
    assert verdict.describe() == "up: this node's checks see it up (local)"
    down = run(LOCAL, vote("a", DOWN, utilization=0.5), vote("b", UP, utilization=0.1))
    assert (down.checked, down.utilization) == (DOWN, 0.5)
    assert down.describe() == "down: this node's checks see it down (local)"
    nothing = run(LOCAL, None, vote("b", DOWN))
    assert (nothing.checked, nothing.up, nothing.down) == (None, 0, 0)
    assert nothing.describe() == "unchecked: this node has not checked it yet (local)"


def test_local_counts_a_stale_own_vote() -> None:
    # The node alone decides: its last word is the only word there is.
    assert run(LOCAL, vote("a", DOWN, at=NOW - 3600)).checked is DOWN


def test_stale_votes_drop_out() -> None:
    old = NOW - MAX_AGE - 0.001
    # Two stale down votes no longer outvote one fresh up vote.
    verdict = run(MAJORITY, vote("a", UP), vote("b", DOWN, at=old), vote("c", DOWN, at=old))
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 1, 0)
    assert run(ANY, vote("a", UP), vote("b", DOWN, at=old)).checked is UP
    # Exactly max_age old is still fresh; a vote from the future is fresh.
    assert run(ANY, vote("a", UP), vote("b", DOWN, at=NOW - MAX_AGE)).checked is DOWN
    assert run(ANY, vote("a", UP), vote("b", DOWN, at=NOW + 60)).checked is DOWN


def test_a_stale_own_vote_is_not_counted_under_majority_or_any() -> None:
    old = NOW - MAX_AGE - 1
    verdict = run(MAJORITY, vote("a", DOWN, at=old), vote("b", UP))
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 1, 0)
    assert run(ANY, vote("a", DOWN, at=old), vote("b", UP)).checked is UP


def test_a_dead_nodes_vote_is_gone() -> None:
    # c saw the region down, then died: its vote ages out and the region comes back up.
    votes = (vote("b", UP, at=NOW), vote("c", DOWN, at=NOW))
    assert run(MAJORITY, vote("a", DOWN), *votes).checked is DOWN
    later = NOW + MAX_AGE + 1
    verdict = run(MAJORITY, vote("a", DOWN, at=later), vote("b", UP, at=later), votes[1], now=later)
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 1, 1)


def test_no_fresh_vote_is_unchecked() -> None:
    verdict = run(MAJORITY, None)
    assert (verdict.checked, verdict.up, verdict.down) == (None, 0, 0)
    assert verdict.describe() == "unchecked: no fresh vote"
    assert run(ANY, None, vote("b", DOWN, at=0.0)).checked is None


def test_the_latest_vote_of_a_node_wins_and_own_overrides_its_copy() -> None:
    verdict = run(MAJORITY, None, vote("b", DOWN, at=NOW - 5), vote("b", UP, at=NOW - 1))
    assert (verdict.checked, verdict.up, verdict.down) == (UP, 1, 0)
    # The store's copy of this node's vote is older or newer: the node's own word counts.
    assert run(ANY, vote("a", UP, at=NOW - 5), vote("a", DOWN, at=NOW)).checked is UP
    # A stale own vote takes its copy out with it.
    assert run(ANY, vote("a", UP, at=0.0), vote("a", DOWN)).checked is None


def test_utilization_and_version_come_from_the_freshest_vote_reporting_each() -> None:
    verdict = run(
        MAJORITY,
        vote("a", UP, at=NOW - 3, utilization=0.4, version="41"),
        vote("b", UP, at=NOW - 1, utilization=None, version="42"),
        vote("c", UP, at=NOW - 2, utilization=0.6, version=None),
        vote("d", UP, at=NOW - 60, utilization=0.9, version="40"),  # stale
    )
    assert (verdict.utilization, verdict.version) == (0.6, "42")
    # Heard at the same moment: the first node name.
    tie = run(ANY, vote("b", UP, utilization=0.2), vote("a", UP, utilization=0.1))
    assert tie.utilization == 0.1
    assert run(ANY, vote("a", DOWN)).utilization is None


def test_a_vote_is_up_or_down() -> None:
    with pytest.raises(ValueError, match="node 'a'"):
        vote("a", Health.DRAIN)


# -- Properties ------------------------------------------------------------------------------

NODES = [f"n{i}" for i in range(6)]
healths = st.sampled_from([UP, DOWN])
policies = st.sampled_from(list(Quorum))
times = st.sampled_from([NOW - 40.0, NOW - 15.0, NOW - 5.0, NOW, NOW + 2.0])
utilizations = st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.9]))
versions = st.one_of(st.none(), st.sampled_from(["41", "42"]))
votes = st.builds(Vote, st.sampled_from(NODES), healths, utilizations, versions, times)
fresh_votes = st.builds(
    Vote, st.sampled_from(NODES), healths, utilizations, versions, st.sampled_from([NOW - 5, NOW])
)


def distinct(vs: list[Vote]) -> list[Vote]:
    """One vote per node: the fleet as every node sees it once the store has caught up."""
    return list({v.node: v for v in vs}.values())


@settings(max_examples=300)
@given(policies, st.one_of(st.none(), votes), st.lists(votes, max_size=8), st.randoms())
def test_order_of_others_does_not_matter(
    policy: Quorum, own: Vote | None, others: list[Vote], rnd: random.Random
) -> None:
    shuffled = list(others)
    rnd.shuffle(shuffled)
    assert decide(policy, own, others, NOW, MAX_AGE) == decide(policy, own, shuffled, NOW, MAX_AGE)


@settings(max_examples=300)
@given(st.lists(fresh_votes, min_size=1, max_size=6), healths)
def test_majority_is_monotonic(vs: list[Vote], added: Health) -> None:
    vs = distinct(vs)
    own, others = vs[0], vs[1:]
    new = Vote("new-node", added, None, None, NOW)
    before = decide(MAJORITY, own, others, NOW, MAX_AGE).checked
    after = decide(MAJORITY, own, [*others, new], NOW, MAX_AGE).checked
    if added is UP and before is UP:
        assert after is UP
    if added is DOWN and before is DOWN:
        assert after is DOWN


@settings(max_examples=200)
@given(policies, healths, st.lists(fresh_votes, min_size=1, max_size=6))
def test_unanimous_fresh_votes_decide_under_every_policy(
    policy: Quorum, health: Health, vs: list[Vote]
) -> None:
    same = [Vote(v.node, health, v.utilization, v.version, v.at) for v in distinct(vs)]
    assert decide(policy, same[0], same[1:], NOW, MAX_AGE).checked is health


@settings(max_examples=300)
@given(policies, st.lists(votes, max_size=8))
def test_utilization_and_version_are_the_freshest_reported(policy: Quorum, vs: list[Vote]) -> None:
    vs = distinct(vs)
    own, others = (vs[0], vs[1:]) if vs else (None, [])
    verdict = decide(policy, own, others, NOW, MAX_AGE)
    if policy is LOCAL:
        counted = [] if own is None else [own]
    else:
        counted = [v for v in vs if NOW - v.at <= MAX_AGE]
    for got, attr in ((verdict.utilization, "utilization"), (verdict.version, "version")):
        reporting = [v for v in counted if getattr(v, attr) is not None]
        if not reporting:
            assert got is None
            continue
        latest = max(v.at for v in reporting)
        first = min(v.node for v in reporting if v.at == latest)
        assert got == next(getattr(v, attr) for v in reporting if v.node == first)


@settings(max_examples=300)
@given(st.sampled_from([MAJORITY, ANY]), st.lists(fresh_votes, min_size=1, max_size=6))
def test_every_node_reaches_the_same_verdict(policy: Quorum, vs: list[Vote]) -> None:
    vs = distinct(vs)
    verdicts = {decide(policy, own, [v for v in vs if v is not own], NOW, MAX_AGE) for own in vs}
    verdicts.add(decide(policy, None, vs, NOW, MAX_AGE))  # a node that has not voted yet
    assert len(verdicts) == 1


def test_nodes_hearing_the_same_votes_at_different_moments_pick_the_same_figures() -> None:
    # Each node hears the others "now" (their leases are alive) and itself when it probed:
    # utilization and version go by when each vote's probe was made, not when it was heard,
    # or each node would take another's figure and shed differently.
    observed = {"a": NOW - 2.0, "b": NOW - 0.5, "c": NOW - 1.0}
    load = {"a": 0.5, "b": 0.8, "c": 0.6}

    def seen_from(me: str) -> Verdict:
        votes = [
            Vote(n, UP, load[n], "41", observed[n] if n == me else NOW, observed[n])
            for n in sorted(observed)
        ]
        own = next(v for v in votes if v.node == me)
        return decide(MAJORITY, own, [v for v in votes if v is not own], NOW, MAX_AGE)

    assert {seen_from(me).utilization for me in observed} == {0.8}
