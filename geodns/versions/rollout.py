"""The rolling-update guard's rules, as pure functions of a rollout, a service and a state.

A rollout takes one service from its current version (`from_version`) to `to`, region by
region. Nothing here reads a clock or a file: `now` is a parameter, and every function
returns a new `Rollout` or raises `RolloutRefused` with a one-line reason.

    running --validate / soak--> validated --last region updated--> completed
       \\                            |
        +---------- abort ----------+--> aborted

- `begin` drains one region at a time, and only if, once it is out, at least `min_old`
  other regions keep serving plain answers on an approved version (`from_version` before
  validation, either version after), and every residency rule holding the region keeps
  its own `min_old` of them, never fewer than one: a rule's clients are answered only
  from its regions, so a rule left with none fails closed or gets an unapproved version
  however many regions elsewhere are fine. The region may be deployed one TTL later,
  when the answers its clients cached have expired (`deploy_after`).
- `observe` marks a draining region updated once its checks pass and it reports `to` (a
  region never begun that does so was updated outside the guard, and counts too),
  validates after `soak_seconds` of every updated region healthy on `to`, and completes
  a validated rollout when every region of the service is updated.
- `validate` and `abort` drain nothing: validation only adds a version to plain answers;
  an abort releases the drain and is never refused (it is the way back from a bad
  version), though a rule whose healthy regions are all updated then keeps getting the
  new version, routing's fallback, until they are rolled back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from geodns.errors import GeodnsError
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.versions.serving import current_version, region_version
from geodns.zones.model import Region, ResidencyRule, Service

Phase = Literal["draining", "updated"]
Status = Literal["running", "validated", "completed", "aborted"]
PHASES: tuple[str, ...] = ("draining", "updated")
STATUSES: tuple[str, ...] = ("running", "validated", "completed", "aborted")
ACTIVE: frozenset[str] = frozenset({"running", "validated"})


class RolloutRefused(GeodnsError):
    """A rollout operation the rules forbid; str() is the one-line reason (`refused: ...`)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason if reason.startswith("refused: ") else f"refused: {reason}"
        super().__init__(self.reason)


class RolloutNotFound(GeodnsError, LookupError):
    """No rollout for a service, or no such region in it: the admin API answers 404."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


@dataclass(frozen=True, slots=True)
class RegionStep:
    """Where one region stands in a rollout; regions not yet begun have no step."""

    phase: Phase
    begun: float  # epoch seconds of `begin`
    deploy_after: float  # begun + the service TTL: deploy only from then on
    updated_at: float | None = None  # when it first reported `to` with passing checks


@dataclass(frozen=True, kw_only=True)
class Rollout:
    service: str
    from_version: str
    to: str
    min_old: int = 2
    soak_seconds: float | None = None  # None: validated by hand only
    started: float
    status: Status = "running"
    regions: Mapping[str, RegionStep] = field(default_factory=lambda: MappingProxyType({}))
    validated_at: float | None = None
    ended_at: float | None = None  # completed or aborted
    # Since when every updated region has been healthy on `to`, without a break; None while
    # one is not (or none is updated). Soaking counts from here, so a region that fails
    # mid-soak, or a newly updated one, starts the soak over.
    soak_since: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def describe(self) -> str:
        return f"rollout of {self.service} from {self.from_version} to {self.to}"


def _v(version: str) -> str:
    # Messages write versions as v41; a version already spelled v41 is not doubled.
    return version if version[:1] in ("v", "V") else f"v{version}"


def iso_time(t: float) -> str:
    """Epoch seconds as people read them in refusals and the CLI: 2026-11-25T13:40:12Z."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checks_pass(rs: RegionState) -> bool:
    """Healthy by its own checks, whatever the guard's drain: a region the guard holds
    drained is `drain` in effect, yet must be seen serving `to` to count as updated. An
    unchecked region counts as up, as everywhere else; an operator's `down` does not."""
    return rs.checked is not Health.DOWN and rs.forced is not Health.DOWN


def start(
    service: Service,
    state: StateSnapshot,
    to: str,
    min_old: int,
    soak_seconds: float | None,
    now: float,
    existing: Rollout | None,
) -> Rollout:
    """A new rollout of `service` to `to`, or the reason there can't be one."""
    if existing is not None and existing.active:
        raise RolloutRefused(
            f"a {existing.describe()} is already {existing.status}: abort it or let it complete"
        )
    if not isinstance(to, str) or not to.strip():
        raise RolloutRefused("the version to roll out must be a non-empty string")
    to = to.strip()
    if isinstance(min_old, bool) or not isinstance(min_old, int) or min_old < 0:
        raise RolloutRefused(f"min_old must be a whole number 0 or more, not {min_old!r}")
    others = len(service.regions) - 1
    if min_old > others:
        raise RolloutRefused(
            f"min_old is {min_old} but {service.key} has {len(service.regions)} regions:"
            f" no region could ever begin (min_old at most {max(others, 0)})"
        )
    if soak_seconds is not None and (
        isinstance(soak_seconds, bool)
        or not isinstance(soak_seconds, int | float)
        or not math.isfinite(soak_seconds)
        or soak_seconds < 0
    ):
        raise RolloutRefused(f"soak_seconds must be 0 or more seconds, not {soak_seconds!r}")
    current = current_version(service, state)
    if current is None:
        raise RolloutRefused(
            f"the current version of {service.key} is unknown: no region reports one"
        )
    if to == current:
        raise RolloutRefused(f"{service.key} already serves {_v(to)}")
    return Rollout(
        service=service.key,
        from_version=current,
        to=to,
        min_old=min_old,
        soak_seconds=None if soak_seconds is None else float(soak_seconds),
        started=now,
    )


def _require_active(rollout: Rollout) -> None:
    if not rollout.active:
        raise RolloutRefused(f"the {rollout.describe()} is {rollout.status}")


def _versions_text(rollout: Rollout) -> str:
    # "v41", or "v41 or v42" once validated: what counts as serving in refusals.
    approved = approved_versions(rollout, None)
    return " or ".join(_v(v) for v in (rollout.from_version, rollout.to) if v in approved)


def serving_approved(
    rollout: Rollout, service: Service, state: StateSnapshot, without: str | None = None
) -> list[Region]:
    """Regions that keep plain answers on an approved version once `without` is drained.

    Effective health: a region drained by an operator (or by this guard) takes no traffic of
    its own, so it cannot be what keeps a version available. Before validation only regions
    not begun count (the "old" regions, on `from_version`); after it, updated regions on the
    validated `to` count too, and only the draining one is out.
    """
    approved = approved_versions(rollout, None)  # what routing keeps in plain answers
    out = []
    for r in service.regions:
        step = rollout.regions.get(r.name)
        if r.name == without or (
            step is not None and (step.phase == "draining" or rollout.status == "running")
        ):
            continue
        if state.get(service.key, r.name).up and region_version(service, r, state) in approved:
            out.append(r)
    return out


def begin(
    rollout: Rollout, service: Service, state: StateSnapshot, region: str, now: float
) -> Rollout:
    """Drain `region` for its update; it may be deployed from `service.ttl` seconds on."""
    _require_active(rollout)
    if region not in {r.name for r in service.regions}:
        raise RolloutNotFound(f"{service.key} has no region {region!r}")
    step = rollout.regions.get(region)
    if step is not None and step.phase == "updated":
        raise RolloutRefused(f"{region} is already updated to {_v(rollout.to)}")
    if step is not None:
        raise RolloutRefused(
            f"{region} is already draining (deploy after {iso_time(step.deploy_after)})"
        )
    busy = [name for name, s in rollout.regions.items() if s.phase == "draining"]
    if busy:
        raise RolloutRefused(
            f"{busy[0]} is still in progress: it must report {_v(rollout.to)} healthy"
            " before the next region begins"
        )
    left = serving_approved(rollout, service, state, region)
    if len(left) < rollout.min_old:
        noun = "region" if len(left) == 1 else "regions"
        raise RolloutRefused(
            f"only {len(left)} other {noun} healthy on {_versions_text(rollout)},"
            f" min_old is {rollout.min_old}"
        )
    for rule in service.residency:
        if region in rule.regions:
            _check_rule(rule, rollout, service, state, region, left)
    steps = dict(rollout.regions)
    steps[region] = RegionStep("draining", now, now + service.ttl)
    return replace(rollout, regions=MappingProxyType(steps))


def _check_rule(
    rule: ResidencyRule,
    rollout: Rollout,
    service: Service,
    state: StateSnapshot,
    region: str,
    left: list[Region],
) -> None:
    """Refuse a drain of `region` that leaves `rule` fewer than its own min_old regions on an
    approved version: routing answers the rule's clients from its regions only (residency),
    so regions elsewhere cannot stand in for them. Never its last one, even with min_old 0:
    the rule's clients would fail closed, or get a version not approved."""
    kept = [r.name for r in left if r.name in rule.regions]
    need = max(rule.min_old, 1)
    if len(kept) >= need:
        return
    others = [r for r in service.regions if r.name in rule.regions and r.name != region]
    to, versions = _v(rollout.to), _versions_text(rollout)
    if not others:
        # The guard cannot update it safely; the operator can, knowingly (docs/rollouts.md).
        when = "now" if rollout.status == "validated" else f"once {to} is validated"
        raise RolloutRefused(
            f"{region} is the only region of {rule.describe()}, and the guard never drains a"
            f" rule's last region: add a second region to the rule, or update {region} outside"
            f" the guard {when}: drain it yourself (the rule's clients fail closed"
            f" ({rule.when_none}) until you give it back), deploy {to}; the rollout counts it"
            f" updated once it reports {to} healthy"
        )
    if kept:
        noun = "region" if len(kept) == 1 else "regions"
        hint = ""
        if len(others) < need:
            hint = (
                f"; with {len(others) + 1} regions in the rule the guard can drain none of them"
                f" (min_old at most {len(others)}, or add a region to the rule)"
            )
        raise RolloutRefused(
            f"{rule.describe()} keeps only {len(kept)} healthy {noun} on {versions} besides"
            f" {region} ({', '.join(kept)}), its min_old is {rule.min_old}{hint}"
        )
    out = "; ".join(_why_out(rollout, service, state, r) for r in others)
    up = [
        r.name
        for r in others
        if state.get(service.key, r.name).up
        and not ((s := rollout.regions.get(r.name)) is not None and s.phase == "draining")
    ]
    if up:
        then = f"be answered from {', '.join(up)} on a version not approved"
    else:
        then = f"fail closed ({rule.when_none})"
    fresh = [
        r.name
        for r in others
        if rollout.status == "running"
        and state.get(service.key, r.name).up
        and region_version(service, r, state) == rollout.to
    ]
    if fresh:
        fix = f"validate {to} first, and {', '.join(fresh)} will count"
    else:
        fix = f"bring another region of the rule back healthy on {versions} first"
    raise RolloutRefused(
        f"{rule.describe()} keeps no healthy region on {versions} besides {region} ({out}):"
        f" its clients would {then}, and the guard never drains a rule's last region,"
        f" whatever its min_old ({rule.min_old}); {fix}"
    )


def _why_out(rollout: Rollout, service: Service, state: StateSnapshot, region: Region) -> str:
    """Why a region of a rule does not keep plain answers on an approved version."""
    step = rollout.regions.get(region.name)
    if step is not None and step.phase == "draining":
        return f"{region.name} draining for this rollout"
    rs = state.get(service.key, region.name)
    if rs.health is Health.DRAIN:
        return f"{region.name} drained"
    if not rs.up:
        return f"{region.name} {rs.health}"
    version = region_version(service, region, state)
    if version is None:
        return f"{region.name} reports no version"
    if version == rollout.to:
        return f"{region.name} on {_v(version)}, not validated yet"
    return f"{region.name} on {_v(version)}"


def observe(rollout: Rollout, service: Service, state: StateSnapshot, now: float) -> Rollout:
    """Progress from the latest state: updated regions, validation by soak, completion.

    Call it on every new state and on a timer too, since a soak ends with time alone.
    """
    if not rollout.active:
        return rollout
    by_name = {r.name: r for r in service.regions}
    steps = dict(rollout.regions)
    newly_updated = False
    for name, step in rollout.regions.items():
        region = by_name.get(name)
        if region is None:
            if step.phase == "draining":
                # Gone from the config: nothing left to deploy, and keeping it would block
                # every other region (one at a time).
                del steps[name]
            continue
        if step.phase == "draining" and _serves_new(rollout, service, region, state):
            steps[name] = replace(step, phase="updated", updated_at=now)
            newly_updated = True
    for region in service.regions:
        # Updated outside the guard, as a region a residency rule holds alone must be (begin
        # never drains a rule's last region): it is as updated as one begun, so the soak
        # watches it and the rollout can complete.
        if region.name not in steps and _serves_new(rollout, service, region, state):
            steps[region.name] = RegionStep("updated", now, now, now)
            newly_updated = True
    updated = [by_name[n] for n, s in steps.items() if s.phase == "updated" and n in by_name]
    soak_since = rollout.soak_since
    if not updated or not all(_serves_new(rollout, service, r, state) for r in updated):
        soak_since = None
    elif soak_since is None or newly_updated:
        soak_since = now
    out = replace(rollout, regions=MappingProxyType(steps), soak_since=soak_since)
    if (
        out.status == "running"
        and out.soak_seconds is not None
        and soak_since is not None
        and now - soak_since >= out.soak_seconds
    ):
        out = replace(out, status="validated", validated_at=now)
    if out.status == "validated" and all(
        (s := steps.get(r.name)) is not None and s.phase == "updated" for r in service.regions
    ):
        out = replace(out, status="completed", ended_at=now)
    return out


def _serves_new(rollout: Rollout, service: Service, region: Region, state: StateSnapshot) -> bool:
    rs = state.get(service.key, region.name)
    return checks_pass(rs) and region_version(service, region, state) == rollout.to


def validate(rollout: Rollout, now: float) -> Rollout:
    """By hand: `to` may reach plain answers beside `from_version`."""
    if rollout.status == "validated":
        raise RolloutRefused(f"the {rollout.describe()} is already validated")
    _require_active(rollout)
    if not any(s.phase == "updated" for s in rollout.regions.values()):
        raise RolloutRefused(
            f"no region of {rollout.service} serves {_v(rollout.to)} yet: begin one and let"
            " it report the new version healthy first"
        )
    return replace(rollout, status="validated", validated_at=now)


def abort(rollout: Rollout, now: float) -> Rollout:
    """Take `to` out of plain answers again; the record stays, so status still shows it."""
    _require_active(rollout)
    return replace(rollout, status="aborted", ended_at=now)


def approved_versions(rollout: Rollout | None, current: str | None) -> frozenset[str]:
    """The versions plain answers may reach."""
    if rollout is None:
        return frozenset() if current is None else frozenset({current})
    if rollout.status == "validated":
        return frozenset({rollout.from_version, rollout.to})
    if rollout.status == "completed":
        return frozenset({rollout.to})
    # Running or aborted: only the proven version, whatever share the regions report.
    return frozenset({rollout.from_version})


def canary_version(rollout: Rollout | None) -> str | None:
    """The new version before validation: version-named hosts and the canary share only."""
    return rollout.to if rollout is not None and rollout.status == "running" else None


def drained_regions(rollout: Rollout | None) -> frozenset[str]:
    """Regions the guard holds drained now."""
    if rollout is None or not rollout.active:
        return frozenset()
    return frozenset(n for n, s in rollout.regions.items() if s.phase == "draining")


def may_deploy(step: RegionStep, now: float) -> bool:
    return now >= step.deploy_after


def changes(before: Rollout | None, after: Rollout) -> list[str]:
    """Log lines for what `observe` changed."""
    head = f"rollout of {after.service} to {after.to}"
    lines: list[str] = []
    old = {} if before is None else before.regions
    for name, step in after.regions.items():
        before_step = old.get(name)
        if step.phase == "updated" and before_step is None:
            lines.append(f"{head}: {name} updated outside the guard (never begun)")
        elif step.phase == "updated" and before_step.phase != "updated":
            lines.append(f"{head}: {name} updated")
        elif before_step is None:
            lines.append(f"{head}: {name} draining")
    lines += [f"{head}: {name} left the service" for name in old if name not in after.regions]
    status = None if before is None else before.status
    if after.status != status:
        if after.status == "validated":
            lines.append(f"{head}: validated after {_seconds(after.soak_seconds)} soak")
        if after.status == "completed":
            if status == "running":
                lines.append(f"{head}: validated after {_seconds(after.soak_seconds)} soak")
            lines.append(f"{head}: completed, {after.to} is the current version")
    return lines


def _seconds(value: float | None) -> str:
    return "no" if value is None else f"{value:g} s"


# --- HTTP replies (the contract is in geodns/versions/cli.py) ------------------------------


def rollout_reply(rollout: Rollout, service: Service | None, now: float) -> dict[str, Any]:
    """The body of every rollout route: the rollout, the regions not begun yet, server time."""
    pending = (
        []
        if service is None
        else [r.name for r in service.regions if r.name not in rollout.regions]
    )
    return {**to_json(rollout), "pending": pending, "server_time": now}


def region_reply(rollout: Rollout, service: Service, region: str, now: float) -> dict[str, Any]:
    """The body of the region routes: the rollout plus where `region` stands."""
    if region not in {r.name for r in service.regions} and region not in rollout.regions:
        raise RolloutNotFound(f"{service.key} has no region {region!r}")
    step = rollout.regions.get(region)
    return {
        **rollout_reply(rollout, service, now),
        "region": region,
        "phase": "pending" if step is None else step.phase,
        "deploy_after": None if step is None else step.deploy_after,
        # An aborted rollout no longer holds the region: nothing to deploy to.
        "may_deploy": step is not None and rollout.active and may_deploy(step, now),
        "wait_seconds": None if step is None else max(0.0, step.deploy_after - now),
    }


# --- JSON ---------------------------------------------------------------------------------


def to_json(rollout: Rollout) -> dict[str, Any]:
    return {
        "service": rollout.service,
        "from_version": rollout.from_version,
        "to": rollout.to,
        "min_old": rollout.min_old,
        "soak_seconds": rollout.soak_seconds,
        "started": rollout.started,
        "status": rollout.status,
        "validated_at": rollout.validated_at,
        "ended_at": rollout.ended_at,
        "soak_since": rollout.soak_since,
        "regions": {
            name: {
                "phase": s.phase,
                "begun": s.begun,
                "deploy_after": s.deploy_after,
                "updated_at": s.updated_at,
            }
            for name, s in rollout.regions.items()
        },
    }


def from_json(data: Any) -> Rollout:
    """A rollout from `to_json`'s output; ValueError names the first bad field."""
    if not isinstance(data, dict):
        raise ValueError("rollout: must be a JSON object")
    steps: dict[str, RegionStep] = {}
    regions = _field(data, "regions", dict, "", "an object of region -> step")
    for name, raw in regions.items():
        where = f"regions.{name}."
        if not isinstance(raw, dict):
            raise ValueError(f"rollout: regions.{name}: must be an object")
        phase = _field(raw, "phase", str, where)
        if phase not in PHASES:
            raise ValueError(f"rollout: {where}phase: {phase!r} is not one of {', '.join(PHASES)}")
        updated_at = _optional_time(raw, "updated_at", where)
        if phase == "updated" and updated_at is None:
            raise ValueError(f"rollout: {where}updated_at: required when updated")
        steps[name] = RegionStep(
            phase,
            _time(raw, "begun", where),
            _time(raw, "deploy_after", where),
            updated_at,
        )
    status = _field(data, "status", str)
    if status not in STATUSES:
        raise ValueError(f"rollout: status: {status!r} is not one of {', '.join(STATUSES)}")
    min_old = _field(data, "min_old", int)
    if isinstance(min_old, bool) or min_old < 0:
        raise ValueError(f"rollout: min_old: {min_old!r} is not a whole number 0 or more")
    return Rollout(
        service=_text(data, "service"),
        from_version=_text(data, "from_version"),
        to=_text(data, "to"),
        min_old=min_old,
        soak_seconds=_optional_time(data, "soak_seconds"),
        started=_time(data, "started"),
        status=status,
        regions=MappingProxyType(steps),
        validated_at=_optional_time(data, "validated_at"),
        ended_at=_optional_time(data, "ended_at"),
        soak_since=_optional_time(data, "soak_since"),
    )


def _field(data: dict[str, Any], key: str, kind: type, where: str = "", what: str = "") -> Any:
    if key not in data:
        raise ValueError(f"rollout: {where}{key}: missing")
    value = data[key]
    if not isinstance(value, kind):
        raise ValueError(f"rollout: {where}{key}: {value!r} is not {what or kind.__name__}")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = _field(data, key, str)
    if not value:
        raise ValueError(f"rollout: {key}: must not be empty")
    return value


def _time(data: dict[str, Any], key: str, where: str = "") -> float:
    value = _field(data, key, int | float, where, "a number")  # type: ignore[arg-type]
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"rollout: {where}{key}: {value!r} is not a number 0 or more")
    return float(value)


def _optional_time(data: dict[str, Any], key: str, where: str = "") -> float | None:
    # Missing as well as null, so that files written before a key existed still load.
    return None if data.get(key) is None else _time(data, key, where)
