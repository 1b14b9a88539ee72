"""RolloutGuard: every change persisted, a restart resumes, observe logs what changed, a
refusal writes nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dns.name
import pytest

from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.versions.guard import RolloutGuard, RolloutNotFound, RolloutRefused
from geodns.versions.store import FILE_NAME, RolloutStore, RolloutStoreError
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guard(tmp_path: Path, clock: Clock) -> RolloutGuard:
    return RolloutGuard(RolloutStore(tmp_path / FILE_NAME), clock)


def test_a_restart_mid_rollout_resumes(guard: RolloutGuard, tmp_path: Path, clock: Clock) -> None:
    guard.start(SERVICE, state(), "42", min_old=2, soak_seconds=60)
    rollout = guard.begin(SERVICE, state(), "us-east-1")
    assert rollout.regions["us-east-1"].deploy_after == 1030.0
    again = RolloutGuard(RolloutStore(tmp_path / FILE_NAME), clock)
    assert again.rollouts == guard.rollouts
    assert again.drained() == {(KEY, "us-east-1")}
    # ... and goes on where it was: one region at a time still holds after the restart.
    with pytest.raises(RolloutRefused, match="us-east-1 is still in progress"):
        again.begin(SERVICE, state(), "eu-west-1")


def test_observe_progresses_persists_and_logs(
    guard: RolloutGuard, tmp_path: Path, clock: Clock
) -> None:
    guard.start(SERVICE, state(), "42", min_old=1, soak_seconds=60)
    guard.begin(SERVICE, state(), "us-east-1")
    assert guard.observe(zones(SERVICE), state()) == []
    clock.t = 1040.0
    assert guard.observe(zones(SERVICE), state(us_east_1="42")) == [
        f"rollout of {KEY} to 42: us-east-1 updated"
    ]
    assert guard.approved(SERVICE, state(us_east_1="42")) == {"41"}
    assert guard.canary(SERVICE) == "42"
    clock.t = 1100.0
    assert guard.observe(zones(SERVICE), state(us_east_1="42")) == [
        f"rollout of {KEY} to 42: validated after 60 s soak"
    ]
    assert guard.approved(SERVICE, state(us_east_1="42")) == {"41", "42"}
    assert guard.canary(SERVICE) is None
    assert RolloutStore(tmp_path / FILE_NAME).load()[KEY].status == "validated"


def test_a_whole_rollout_through_the_guard(guard: RolloutGuard, clock: Clock) -> None:
    guard.start(SERVICE, state(), "42", min_old=2)
    done: dict[str, str] = {}
    lines: list[str] = []
    for name in NAMES:
        guard.begin(SERVICE, state(**done), name)
        clock.t += 31
        done[name.replace("-", "_")] = "42"
        lines += guard.observe(zones(SERVICE), state(**done))
        if guard.get(KEY).status == "running":
            guard.validate(KEY)
    lines += guard.observe(zones(SERVICE), state(**done))
    assert guard.get(KEY).status == "completed"
    assert lines[-1] == f"rollout of {KEY} to 42: completed, 42 is the current version"
    assert guard.approved(SERVICE, state(**done)) == {"42"}
    assert guard.drained() == set()


def test_refusals_and_missing_rollouts(guard: RolloutGuard) -> None:
    with pytest.raises(RolloutNotFound, match=f"no rollout of {KEY}"):
        guard.validate(KEY)
    with pytest.raises(RolloutNotFound):
        guard.begin(SERVICE, state(), "us-east-1")
    guard.start(SERVICE, state(), "42")
    with pytest.raises(RolloutRefused) as info:
        guard.start(SERVICE, state(), "43")
    assert str(info.value).startswith("refused: a rollout of")
    guard.abort(KEY + ".")  # the API may name the service with its final dot
    assert guard.get(KEY).status == "aborted"
    assert guard.approved(SERVICE, state()) == {"41"}


def test_no_rollout_approves_the_current_version(guard: RolloutGuard) -> None:
    assert guard.approved(SERVICE, state(us_east_1="40")) == {"41"}
    assert guard.drained() == set() and guard.canary(SERVICE) is None


def test_a_failed_write_changes_nothing(
    guard: RolloutGuard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard.start(SERVICE, state(), "42", min_old=1)

    def full(rollouts: object) -> None:
        raise RolloutStoreError(f"{tmp_path / FILE_NAME}: cannot write: No space left on device")

    monkeypatch.setattr(guard.store, "save", full)
    with pytest.raises(RolloutStoreError):
        guard.begin(SERVICE, state(), "us-east-1")
    assert guard.drained() == set()  # what it enforces is what a restart would load


def test_services_gone_from_the_zones_wait(guard: RolloutGuard, clock: Clock) -> None:
    guard.start(SERVICE, state(), "42", min_old=1)
    guard.begin(SERVICE, state(), "us-east-1")
    before = guard.rollouts
    clock.t += 100
    assert guard.observe(zones(), state(us_east_1="42")) == []
    assert guard.rollouts == before


def test_a_residency_rules_only_region_is_refused_then_counted_when_updated_by_hand(
    guard: RolloutGuard, tmp_path: Path, clock: Clock
) -> None:
    rule = ResidencyRule(ClientMatch(frozenset({"EU"}), description="continent EU"), ("eu-west-1",))
    svc = replace(SERVICE, residency=(rule,))
    guard.start(svc, state(), "42", min_old=1)
    guard.begin(svc, state(), "us-east-1")
    clock.t += 40
    guard.observe(zones(svc), state(us_east_1="42"))
    guard.validate(KEY)
    saved = (tmp_path / FILE_NAME).read_bytes()
    with pytest.raises(RolloutRefused, match="eu-west-1 is the only region of residency rule 0"):
        guard.begin(svc, state(us_east_1="42"), "eu-west-1")
    assert (tmp_path / FILE_NAME).read_bytes() == saved and guard.drained() == set()
    clock.t += 10
    assert guard.observe(zones(svc), state(us_east_1="42", eu_west_1="42")) == [
        f"rollout of {KEY} to 42: eu-west-1 updated outside the guard (never begun)"
    ]
    assert RolloutStore(tmp_path / FILE_NAME).load()[KEY].regions["eu-west-1"].phase == "updated"
