"""RolloutGuard over the store: every decision kept, a restart resumes, observe moves a rollout
on, a refusal writes nothing; and two nodes deciding at once never both pass the rules."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodns.control.rollouts import (
    RolloutConflict,
    RolloutGuard,
    RolloutNotFound,
    RolloutRefused,
)
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.store.follower import SharedFollower
from geodns.store.kv import StoreUnavailable, Txn
from geodns.store.local import FILE_NAME, LocalStore
from geodns.store.shared import (
    Force,
    NodeRecord,
    SharedState,
    decode,
    force_key,
    force_value,
    rollout_key,
)
from geodns.versions.rollout import Rollout, changes, serving_approved
from geodns.zones.model import ClientMatch, Region, ResidencyRule, Service, Zone, ZoneSet

KEY = "inference.example.com"
NAMES = ("us-east-1", "eu-west-1", "ap-northeast-1")
SERVICE = Service(
    dns.name.from_text(KEY + "."),
    30,
    tuple(Region(n, (f"192.0.2.{i}",)) for i, n in enumerate(NAMES, 1)),
)


def zones(*services: Service) -> ZoneSet:
    origin = dns.name.from_text("example.com.")
    # Only `services` matters to the guard.
    zone = Zone(origin, "example.com.yaml", None, {}, {s.name: s for s in services})  # type: ignore[arg-type]
    return ZoneSet({origin: zone})


def state(**versions: str) -> StateSnapshot:
    out = StateSnapshot()
    for name in NAMES:
        version = versions.get(name.replace("-", "_"), "41")
        out = out.with_region(KEY, name, RegionState(Health.UP, checked=Health.UP, version=version))
    return out


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class CountingFollower(SharedFollower):
    """A follower that counts the compare-and-swaps it lost."""

    lost_swaps = 0

    async def commit(self, txn: Txn) -> int | None:
        revision = await super().commit(txn)
        if revision is None:
            self.lost_swaps += 1
        return revision


class Node:
    """One geodns node as the guard sees it: a follower of the shared store, and the region
    state its health checks give (set by the test, or derived by `derive`)."""

    def __init__(
        self,
        store: LocalStore,
        name: str,
        clock: Clock,
        derive: Callable[[Node], StateSnapshot] | None = None,
    ) -> None:
        self.state = state()
        self._derive = derive
        record = NodeRecord(name, f"instance-of-{name}", "0.1.0", 0.0)
        self.follower = CountingFollower(store, record, lambda _: None, lease_ttl=30.0)
        self.guard = RolloutGuard(self.follower, self.current, clock)

    def current(self) -> StateSnapshot:
        return self.state if self._derive is None else self._derive(self)

    async def observe(self, zoneset: ZoneSet, snapshot: StateSnapshot) -> list[str]:
        """What a control plane does with a new state: observe, then commit each step."""
        lines = []
        for before, after in self.guard.observe(zoneset, snapshot).values():
            if await self.guard.progress(before, after):
                lines += changes(before, after)
        return lines


@asynccontextmanager
async def fleet(
    path: Path, clock: Clock, n: int = 1, derive: Callable[[Node], StateSnapshot] | None = None
) -> AsyncIterator[list[Node]]:
    """`n` nodes sharing ONE store, as the nodes of a fleet share etcd."""
    store = LocalStore(path)
    nodes = [Node(store, f"dns-{i}", clock, derive) for i in range(n)]
    async with AsyncExitStack() as stack:
        for node in nodes:
            await node.follower.start()
            stack.push_async_callback(node.follower.stop)
        yield nodes


async def stored(path: Path) -> SharedState:
    """What the next start would read."""
    store = LocalStore(path)
    await store.open()
    listing = await store.list("")
    return decode(listing.revision, listing.entries)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / FILE_NAME


# -- One node -------------------------------------------------------------------------------


def test_a_restart_mid_rollout_resumes(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            await node.guard.start(SERVICE, "42", min_old=2, soak_seconds=60)
            rollout = await node.guard.begin(SERVICE, "us-east-1")
            assert rollout.regions["us-east-1"].deploy_after == 1030.0
            before = node.guard.rollouts
        async with fleet(path, clock) as (again,):
            assert again.guard.rollouts == before
            assert again.guard.drained() == {(KEY, "us-east-1")}
            # ... and goes on where it was: one region at a time still holds after the restart.
            with pytest.raises(RolloutRefused, match="us-east-1 is still in progress"):
                await again.guard.begin(SERVICE, "eu-west-1")

    asyncio.run(main())


def test_observe_progresses_and_persists(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            guard = node.guard
            await guard.start(SERVICE, "42", min_old=1, soak_seconds=60)
            await guard.begin(SERVICE, "us-east-1")
            assert guard.observe(zones(SERVICE), state()) == {}
            clock.t = 1040.0
            assert await node.observe(zones(SERVICE), state(us_east_1="42")) == [
                f"rollout of {KEY} to 42: us-east-1 updated"
            ]
            assert guard.get(KEY).regions["us-east-1"].phase == "updated"
            assert guard.approved(SERVICE, state(us_east_1="42")) == {"41"}
            assert guard.canary(SERVICE) == "42"
            assert guard.drained() == set()
            clock.t = 1100.0
            observed = guard.observe(zones(SERVICE), state(us_east_1="42"))
            ((before, after),) = observed.values()
            assert changes(before, after) == [f"rollout of {KEY} to 42: validated after 60 s soak"]
            assert await guard.progress(before, after)
            # The same step seen again (by this node late, or by another): not written twice.
            assert not await guard.progress(before, after)
            assert guard.approved(SERVICE, state(us_east_1="42")) == {"41", "42"}
            assert guard.canary(SERVICE) is None
        assert (await stored(path)).rollouts[KEY].status == "validated"

    asyncio.run(main())


def test_a_whole_rollout_through_the_guard(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            guard = node.guard
            await guard.start(SERVICE, "42", min_old=2)
            done: dict[str, str] = {}
            lines: list[str] = []
            for name in NAMES:
                node.state = state(**done)
                await guard.begin(SERVICE, name)
                clock.t += 31
                done[name.replace("-", "_")] = "42"
                node.state = state(**done)
                lines += await node.observe(zones(SERVICE), node.state)
                if guard.get(KEY).status == "running":
                    await guard.validate(SERVICE)
            lines += await node.observe(zones(SERVICE), node.state)
            assert guard.get(KEY).status == "completed"
            assert lines[-1] == f"rollout of {KEY} to 42: completed, 42 is the current version"
            assert guard.approved(SERVICE, state(**done)) == {"42"}
            assert guard.drained() == set()
        assert (await stored(path)).rollouts[KEY].status == "completed"

    asyncio.run(main())


def test_refusals_and_missing_rollouts(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            guard = node.guard
            with pytest.raises(RolloutNotFound, match=f"no rollout of {KEY}"):
                await guard.validate(SERVICE)
            with pytest.raises(RolloutNotFound):
                await guard.begin(SERVICE, "us-east-1")
            with pytest.raises(RolloutNotFound):
                guard.get(KEY)
            assert node.follower.state.mod_of(rollout_key(KEY)) == 0  # nothing written
            await guard.start(SERVICE, "42")
            revision = node.follower.state.mod_of(rollout_key(KEY))
            with pytest.raises(RolloutRefused) as info:
                await guard.start(SERVICE, "43")
            assert str(info.value).startswith("refused: a rollout of")
            with pytest.raises(RolloutNotFound, match="has no region 'mars-1'"):
                await guard.begin(SERVICE, "mars-1")
            with pytest.raises(RolloutRefused, match=r"no region of .* serves v42 yet"):
                await guard.validate(SERVICE)
            # A refusal writes nothing.
            assert node.follower.state.mod_of(rollout_key(KEY)) == revision
            await guard.abort(SERVICE)
            assert guard.get(KEY + ".").status == "aborted"  # the API may name it with a dot
            assert guard.approved(SERVICE, state()) == {"41"}
            with pytest.raises(RolloutRefused, match="is aborted"):
                await guard.abort(SERVICE)

    asyncio.run(main())


def test_no_rollout_approves_the_current_version(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            assert node.guard.approved(SERVICE, state(us_east_1="40")) == {"41"}
            assert node.guard.drained() == set() and node.guard.canary(SERVICE) is None

    asyncio.run(main())


def test_a_failed_write_changes_nothing(
    path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            await node.guard.start(SERVICE, "42", min_old=1)
            saved = path.read_bytes()

            def full(src: str, dst: str) -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr("os.replace", full)
            with pytest.raises(StoreUnavailable, match="No space left on device"):
                await node.guard.begin(SERVICE, "us-east-1")
            monkeypatch.undo()
            # What it enforces is what a restart would load.
            assert node.guard.drained() == set()
            assert path.read_bytes() == saved

    asyncio.run(main())


def test_services_gone_from_the_zones_wait(path: Path, clock: Clock) -> None:
    async def main() -> None:
        async with fleet(path, clock) as (node,):
            await node.guard.start(SERVICE, "42", min_old=1)
            await node.guard.begin(SERVICE, "us-east-1")
            before = node.guard.rollouts
            clock.t += 100
            assert node.guard.observe(zones(), state(us_east_1="42")) == {}
            assert node.guard.rollouts == before

    asyncio.run(main())


def test_a_residency_rules_only_region_is_refused_then_counted_when_updated_by_hand(
    path: Path, clock: Clock
) -> None:
    rule = ResidencyRule(ClientMatch(frozenset({"EU"}), description="continent EU"), ("eu-west-1",))
    svc = replace(SERVICE, residency=(rule,))

    async def main() -> None:
        async with fleet(path, clock) as (node,):
            guard = node.guard
            await guard.start(svc, "42", min_old=1)
            await guard.begin(svc, "us-east-1")
            clock.t += 40
            node.state = state(us_east_1="42")
            await node.observe(zones(svc), node.state)
            await guard.validate(svc)
            saved = path.read_bytes()
            with pytest.raises(
                RolloutRefused, match="eu-west-1 is the only region of residency rule 0"
            ):
                await guard.begin(svc, "eu-west-1")
            assert path.read_bytes() == saved and guard.drained() == set()
            clock.t += 10
            node.state = state(us_east_1="42", eu_west_1="42")
            assert await node.observe(zones(svc), node.state) == [
                f"rollout of {KEY} to 42: eu-west-1 updated outside the guard (never begun)"
            ]
        assert (await stored(path)).rollouts[KEY].regions["eu-west-1"].phase == "updated"

    asyncio.run(main())


# -- Two nodes, one store ---------------------------------------------------------------------


def test_two_begins_at_once_on_two_nodes_drain_one_region(path: Path, clock: Clock) -> None:
    rng = random.Random(12)

    async def main() -> None:
        async with fleet(path, clock, n=2) as (a, b):
            for trial in range(40):
                # ap-northeast-1 is down on both nodes: each begin alone would leave exactly
                # min_old (1) region serving; both together would leave none.
                down = RegionState(Health.DOWN, checked=Health.DOWN, version="41")
                for node in (a, b):
                    node.state = state().with_region(KEY, "ap-northeast-1", down)
                starter = rng.choice((a, b))
                await starter.guard.start(SERVICE, "42", min_old=1)
                first, second = rng.sample([a, b], 2)
                regions = ["us-east-1", "eu-west-1"]
                rng.shuffle(regions)
                delays = [rng.randrange(3), rng.randrange(3)]

                async def begin(node: Node, region: str, delay: int) -> Rollout:
                    for _ in range(delay):
                        await asyncio.sleep(0)  # vary who reads and who commits first
                    return await node.guard.begin(SERVICE, region)

                results = await asyncio.gather(
                    begin(first, regions[0], delays[0]),
                    begin(second, regions[1], delays[1]),
                    return_exceptions=True,
                )
                won = [r for r in results if isinstance(r, Rollout)]
                refused = [r for r in results if isinstance(r, BaseException)]
                assert len(won) == 1, (trial, results)
                (why,) = refused
                # Refused by the rules on what the winner left, not a conflict to retry.
                assert type(why) is RolloutRefused, (trial, why)
                assert "is still in progress" in str(why)
                for node in (a, b):
                    await node.follower.refresh()
                    rollout = node.guard.get(KEY)
                    draining = [n for n, s in rollout.regions.items() if s.phase == "draining"]
                    assert len(draining) == 1
                    left = serving_approved(rollout, SERVICE, node.state)
                    assert len(left) >= rollout.min_old
                    assert node.guard.drained() == {(KEY, draining[0])}
                await rng.choice((a, b)).guard.abort(SERVICE)
                clock.t += 1
            # The loser's compare-and-swap did lose (then it was run again and refused) in
            # many trials: the race was there.
            assert a.follower.lost_swaps + b.follower.lost_swaps >= 10

    asyncio.run(main())


def test_a_begin_that_loses_its_swap_to_a_drain_is_run_again_and_refused_by_min_old(
    path: Path, clock: Clock
) -> None:
    def with_forces(node: Node) -> StateSnapshot:
        """ap-northeast-1 down; the fleet's operator forces applied, as the plane does."""
        out = state().with_region(
            KEY, "ap-northeast-1", RegionState(Health.DOWN, checked=Health.DOWN, version="41")
        )
        for (service, region), force in node.follower.state.forces.items():
            held = out.get(service, region)
            out = out.with_region(
                service, region, replace(held, health=force.state, forced=force.state)
            )
        return out

    async def main() -> None:
        async with fleet(path, clock, n=2, derive=with_forces) as (a, b):
            await a.guard.start(SERVICE, "42", min_old=1)
            await b.follower.refresh()
            # An operator drains eu-west-1 through node b, and at the same moment a pipeline
            # begins us-east-1 through node a, which has not heard of the drain: its decision
            # (eu-west-1 would keep min_old) is made on what it read, and its swap loses.
            drain = Force(KEY, "eu-west-1", Health.DRAIN, clock(), "ops")
            await b.follower.store.commit(
                Txn(put={force_key(KEY, "eu-west-1"): force_value(drain)})
            )
            assert (KEY, "eu-west-1") not in a.follower.state.forces
            with pytest.raises(RolloutRefused) as info:
                await a.guard.begin(SERVICE, "us-east-1")
            assert a.follower.lost_swaps == 1
            assert type(info.value) is RolloutRefused  # the rules' answer, not a conflict
            assert str(info.value) == "refused: only 0 other regions healthy on v41, min_old is 1"
            assert a.guard.drained() == set()

    asyncio.run(main())


def test_a_begin_racing_a_start_is_refused_or_applied_on_the_new_rollout(
    path: Path, clock: Clock
) -> None:
    async def main() -> None:
        async with fleet(path, clock, n=2) as (a, b):
            await a.guard.start(SERVICE, "42", min_old=1)
            await b.follower.refresh()
            await a.guard.abort(SERVICE)
            # b has not seen the abort yet: its begin runs on an aborted rollout after the
            # swap fails, while a starts a new one.
            results = await asyncio.gather(
                b.guard.begin(SERVICE, "us-east-1"),
                a.guard.start(SERVICE, "42", min_old=1),
                return_exceptions=True,
            )
            assert not any(isinstance(r, RolloutConflict) for r in results), results
            rollout = a.guard.get(KEY)
            assert rollout.status == "running"
            draining = [n for n, s in rollout.regions.items() if s.phase == "draining"]
            assert len(draining) <= 1

    asyncio.run(main())


# -- Random operations from two nodes ---------------------------------------------------------

# Begins and deploys more often than the rest: they are what moves a rollout region by region.
OPS = ("start", "begin", "begin", "deploy", "deploy", "validate", "abort")
# (operation, region for begin, version for start, min_old for start)
op = st.tuples(
    st.sampled_from(OPS),
    st.sampled_from(NAMES),
    st.sampled_from(("42", "43")),
    st.integers(0, 2),
)
Op = tuple[str, str, str, int]


class World:
    """What the regions report, the same to every node: their versions. A region a node's
    guard holds drained is drained in that node's state, as its control plane applies it."""

    def __init__(self) -> None:
        self.versions = dict.fromkeys(NAMES, "41")

    def state_of(self, node: Node) -> StateSnapshot:
        out = StateSnapshot()
        drained = node.guard.drained()
        for name in NAMES:
            forced = Health.DRAIN if (KEY, name) in drained else None
            rs = RegionState(
                forced or Health.UP, checked=Health.UP, forced=forced, version=self.versions[name]
            )
            out = out.with_region(KEY, name, rs)
        return out


async def run(node: Node, world: World, clock: Clock, step: Op) -> object:
    """One operation on one node; refusals are answers, not failures (a conflict is)."""
    kind, region, to, min_old = step
    guard = node.guard
    try:
        if kind == "start":
            return await guard.start(SERVICE, to, min_old=min_old, soak_seconds=None)
        if kind == "begin":
            return await guard.begin(SERVICE, region)
        if kind == "validate":
            return await guard.validate(SERVICE)
        if kind == "abort":
            return await guard.abort(SERVICE)
    except (RolloutRefused, RolloutNotFound) as exc:
        if isinstance(exc, RolloutConflict):
            raise
        return exc
    # deploy: the operator updates the region the guard drains, once its TTL has passed.
    rollout = node.follower.state.rollouts.get(KEY)
    if rollout is not None and rollout.active:
        for name, held in rollout.regions.items():
            if held.phase == "draining" and clock() >= held.deploy_after:
                world.versions[name] = rollout.to
    return None


def draining(rollout: Rollout) -> set[str]:
    return {n for n, s in rollout.regions.items() if s.phase == "draining"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(op, op), min_size=3, max_size=20))
def test_two_nodes_deciding_at_once_never_break_min_old(steps: list[tuple[Op, Op]]) -> None:
    """Whatever two nodes decide at the same moment, one rollout holds at most one region
    draining, a region begun leaves at least min_old others serving an approved version
    (serving_approved), and no decision lowers that count below min_old."""
    world = World()
    clock = Clock()

    async def main(directory: str) -> None:
        path = Path(directory) / FILE_NAME
        async with fleet(path, clock, n=2, derive=world.state_of) as (a, b):
            for step_a, step_b in steps:
                before = a.follower.state.rollouts.get(KEY)
                count_before = (
                    None if before is None else len(serving_approved(before, SERVICE, a.current()))
                )
                results = await asyncio.gather(
                    run(a, world, clock, step_a), run(b, world, clock, step_b)
                )
                clock.t += 31  # past the service TTL: a drained region may be deployed
                # Both control planes see the new state at once and move the rollout on.
                await asyncio.gather(*(n.observe(zones(SERVICE), n.current()) for n in (a, b)))
                for node in (a, b):
                    await node.follower.refresh()
                rollout = a.follower.state.rollouts.get(KEY)
                assert rollout == b.follower.state.rollouts.get(KEY)  # one truth for both
                # No decision that was answered as done is lost to the other node's.
                done = [
                    (s, r)
                    for s, r in zip((step_a, step_b), results, strict=True)
                    if isinstance(r, Rollout)
                ]
                assert [s[0] for s, _ in done].count("start") <= 1, results
                for (kind, region, _, _), decided in done:
                    assert rollout is not None
                    if rollout.started != decided.started:
                        continue  # the other node started a new one after it
                    if kind == "begin":
                        assert region in rollout.regions, (results, rollout)
                    if kind == "validate":
                        assert rollout.status != "running", (results, rollout)
                if rollout is None or not rollout.active:
                    continue
                assert len(draining(rollout)) <= 1, rollout
                count = len(serving_approved(rollout, SERVICE, a.current()))
                same = before is not None and before.started == rollout.started
                begun = draining(rollout) - (draining(before) if same and before else set())
                if begun:
                    assert count >= rollout.min_old, (step_a, step_b, rollout, world.versions)
                elif same:
                    assert count_before is not None
                    assert count >= min(rollout.min_old, count_before), (step_a, step_b, rollout)

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(directory))
