"""The fleet's verdict on one region: the fresh votes of every live node, by the service's quorum.

Every geodns node of a fleet probes every region and publishes its own verdict, a `Vote`
(after its own rise/fall). Each node then calls `decide()` with its own vote and the votes it
has heard from the others; the result is the region's `checked` health (forced states
outrank it, as they outrank a single node's checks: `state.effective_health`).

`decide()` is pure, as a routing step is: no clock (`now` is a parameter), no IO. Every node
that holds the same votes computes the same verdict, whichever of them is its own and in
whatever order it heard them: the nodes must agree on which regions are up, or resolvers
behind different nodes would be sent to different places.

The policies (docs/quorum.md):

    majority  down iff more than half of the fresh votes say down; a tie stays up
    any       down iff at least one fresh vote says down
    local     this node's own vote only, fresh or not: no one else has a say
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from geodns.health.state import Health
from geodns.zones.model import Quorum

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Vote:
    """One node's own verdict on one region, as this node last heard it."""

    node: str
    health: Health  # UP or DOWN: that node's own checks, after its rise/fall
    utilization: float | None  # GPU utilization 0..1 that node's probe read; None: not reported
    version: str | None  # the model version that node's probe read; None: not reported
    # When this node last heard this vote, on the local clock: freshness is judged on one
    # clock, so the nodes' clocks need not agree for it.
    at: float
    # When the voting node made the probe behind it, on that node's clock, as it published it:
    # what "freshest" utilization and version go by, so that every node, hearing the same
    # votes at different moments, picks the same one. None: `at` stands in.
    observed: float | None = None

    def __post_init__(self) -> None:
        if self.health not in (Health.UP, Health.DOWN):
            raise ValueError(f"a vote of node {self.node!r} is up or down, not {self.health}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the fleet's fresh votes say about one region, and how many said what."""

    checked: Health | None  # None: no fresh vote at all (the region counts as unchecked, so up)
    utilization: float | None  # from the freshest counted vote that reports one
    version: str | None  # likewise, independently of utilization
    up: int  # fresh votes counted for up
    down: int  # and down
    policy: Quorum = Quorum.MAJORITY  # the policy that decided, for describe()

    def describe(self) -> str:
        """One line for `geodns explain` and logs: "down: 2 of 3 nodes see it down (majority)"."""
        total = self.up + self.down
        if self.checked is None:
            if self.policy is Quorum.LOCAL:
                return "unchecked: this node has not checked it yet (local)"
            return "unchecked: no fresh vote"
        if self.policy is Quorum.LOCAL:
            return f"{self.checked}: this node's checks see it {self.checked} (local)"
        if self.checked is Health.DOWN:
            return f"down: {_see(self.down, total)} it down ({self.policy})"
        if self.down == 0:
            return f"up: {_see(self.up, total)} it up"
        # Only majority keeps a region up that a vote sees down: no more than half do.
        return f"up: {_see(self.down, total)} it down, no majority"


def decide(
    policy: Quorum, own: Vote | None, others: Iterable[Vote], now: float, max_age: float
) -> Verdict:
    """The region's checked health by `policy` over `own` and `others`, as of `now`.

    A vote is fresh when `now - at <= max_age` (one from the future is fresh: the local clock
    stepped back, and the vote is still the latest word of its node); a stale vote, a dead
    node's last word, is not counted. Among `others`, the latest vote of each node counts;
    `own` replaces any of them that bears its node's name (it is this node's word first-hand,
    where the others' copy of it went through the store), and counts only while fresh.
    """
    if policy is Quorum.LOCAL:
        # The node alone decides and there is no one else to fall back on: a stale own vote
        # is still the best word there is, as it is on a single node without a fleet.
        counted = [] if own is None else [own]
    else:
        latest: dict[str, Vote] = {}
        for vote in others:
            held = latest.get(vote.node)
            if held is None or _order(vote) > _order(held):
                latest[vote.node] = vote
        if own is not None:
            latest[own.node] = own
        counted = [v for v in latest.values() if now - v.at <= max_age]
    down = sum(1 for v in counted if v.health is Health.DOWN)
    up = len(counted) - down
    checked: Health | None
    if not counted:
        checked = None
    elif policy is Quorum.ANY:
        checked = Health.DOWN if down else Health.UP
    else:
        # Majority, and local's single vote. A tie stays up (fail open): when two nodes (or
        # two and two) disagree, one side's broken path is as likely as a broken region, and
        # taking a serving region out of every node's answers is worse than answering a dead
        # one a while longer, which clients' own failover (geodns.client) covers.
        checked = Health.DOWN if down * 2 > len(counted) else Health.UP
    utilization = _freshest(counted, lambda v: v.utilization)
    version = _freshest(counted, lambda v: v.version)
    return Verdict(checked, utilization, version, up, down, policy)


def _order(vote: Vote) -> tuple[float, bool, bool, float, bool, str]:
    """A total order of one node's votes: the latest wins; a tie on `at` (two copies heard at
    once) is broken by the content, so that the order they came in does not matter."""
    return (
        vote.at,
        vote.health is Health.DOWN,
        vote.utilization is not None,
        vote.utilization or 0.0,
        vote.version is not None,
        vote.version or "",
    )


def _freshest(votes: list[Vote], field: Callable[[Vote], T | None]) -> T | None:
    reporting = [v for v in votes if field(v) is not None]
    if not reporting:
        return None
    # Latest observed first; among votes observed at the same moment, the first node name:
    # every node picks the same one from the same votes.
    return field(min(reporting, key=lambda v: (-_observed(v), v.node)))


def _observed(vote: Vote) -> float:
    return vote.at if vote.observed is None else vote.observed


def _see(count: int, total: int) -> str:
    return f"{count} of 1 node sees" if total == 1 else f"{count} of {total} nodes see"
