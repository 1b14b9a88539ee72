"""The capacity control law: each region's shed share, damped, from its smoothed load.

Pure: a function of the previous state, the new reading and the time. The health monitor
folds every reading in (`observe`) and then decides a service's shares (`decide`); the
query path only reads the published share (geodns.routing.capacity). docs/capacity.md
writes the law out:

    level  <- level + (1 - exp(-dt / SMOOTHING)) * (reading - level)     (EWMA)
    target  = share          while low <= level <= high                   (hysteresis)
            = 1 - mid / (level / (1 - share))   outside the band, mid = (low + high) / 2
    share  <- share + clamp(target - share, -STEP, STEP), to a multiple of QUANTUM,
              at most once per PERIOD (the service TTL: resolvers take that long to follow)

and the increase of every region's shed load together is capped by the room the others
have (up to the band's middle, in size units: `capacity: {gpus}`), and each region takes
the share `accept` of the shed networks that reach it (their hash below it) that fills its
room, so that shedding never pushes load onto regions that cannot take it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from geodns.health.probes import parse_utilization
from geodns.zones.model import Capacity

PUSH_EXPIRES = 60.0  # seconds a pushed value counts, unless the push says (at most an hour)
MAX_PUSH_EXPIRES = 3600.0
QUANTUM = 1 / 32  # shares are published in 1/32 steps: few distinct states to decide on
STEP = 4 / 32  # the most a share moves per period: an eighth of the region's networks
SMOOTHING = 0.5  # EWMA time constant, in TTLs: one noisy reading moves the level little
STALE = 3  # TTLs without a reading after which the level is unknown (and shares released)


@dataclass(frozen=True, slots=True)
class Load:
    """One region's controller state. `level` is the smoothed load in utilization terms
    (a ratio; signals with their own watermarks are mapped onto the service's band)."""

    level: float | None = None  # None: unknown (never read, or no reading for STALE TTLs)
    at: float | None = None  # when the latest reading was folded in
    share: float = 0.0  # the published shed share, a multiple of QUANTUM
    moved: float | None = None  # when `share` last changed
    # The share of other regions' shed networks it takes (a multiple of QUANTUM), and what
    # that came to when decided: shed load, in size units (GPUs' worth).
    accept: float = 1.0
    took: float = 0.0
    accepted: float | None = None  # when `accept` last changed


def observe(prev: Load, reading: float | None, now: float, ttl: float) -> Load:
    """Fold one reading in. An unknown reading (absent, garbage) changes nothing; only
    time without any makes the level unknown (see `decide`)."""
    if reading is None:
        return prev
    if prev.level is None or prev.at is None:
        return replace(prev, level=reading, at=now)
    weight = 1 - math.exp(-max(0.0, now - prev.at) / (SMOOTHING * ttl))
    return replace(prev, level=prev.level + weight * (reading - prev.level), at=now)


def pushed_values(body: Mapping[str, Any], capacity: Capacity) -> tuple[dict[str, float], float]:
    """A pushed load, `{"utilization": 0.93, "num_requests_waiting": 12, "expires": 60}`:
    the signal values (utilization as a ratio) and the seconds they count for. Raises
    ValueError saying what is wrong: an unknown key, a value that is not a number."""
    known = {"utilization", *(s.key for s in capacity.signals)}
    unknown = sorted(set(body) - known - {"expires"})
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r}: this service's signals are {', '.join(sorted(known))}"
            " (and `expires`, seconds)"
        )
    values = {}
    for key in sorted(set(body) & known):
        v = body[key]
        if key == "utilization":
            values[key] = parse_utilization(v)
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{key}: {v!r} is not a number")
        else:
            values[key] = float(v)
    if not values:
        raise ValueError(f"no signal values: give one or more of {', '.join(sorted(known))}")
    expires = body.get("expires", PUSH_EXPIRES)
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise ValueError(f"expires: {expires!r} is not a number of seconds")
    if not 0 < expires <= MAX_PUSH_EXPIRES:
        raise ValueError(f"expires: {expires!r} is not above 0 and at most {MAX_PUSH_EXPIRES:g}")
    return values, float(expires)


def level(values: Mapping[str, float], capacity: Capacity) -> float | None:
    """One reading from a region's signals: the worst of them, each normalised to its own
    band (0 at its low, 1 at its high), in utilization terms (mapped onto the service's
    band). `utilization` is GPU utilization as a ratio; a signal missing from `values`
    (absent, garbage) is unknown and counts for nothing; none known: None."""
    worst = None
    low, high = capacity.low, capacity.high
    bands = [("utilization", low, high)] + [(s.key, s.low, s.high) for s in capacity.signals]
    for key, lo, hi in bands:
        v = values.get(key)
        if v is not None and math.isfinite(v):
            x = (v - lo) / (hi - lo)
            worst = x if worst is None else max(worst, x)
    return None if worst is None else low + worst * (high - low)


def target(share: float, level: float | None, low: float, high: float) -> float:
    """The share that would bring the level to the band's middle, if the shed networks
    carry their part of the load; the current share while the level is inside the band."""
    if level is None:
        return 0.0
    if low <= level <= high:
        return share
    if share >= 1:
        return 1.0 if level > high else 0.0  # nothing left to measure by: release by steps
    demand = level / (1 - share)  # what the region would carry shedding nobody
    if demand <= 0:
        return 0.0
    return min(1.0, max(0.0, 1 - (low + high) / 2 / demand))


def quantize(share: float) -> float:
    return min(1.0, max(0.0, round(share / QUANTUM) * QUANTUM))


def decide(
    prev: Mapping[str, Load],
    sizes: Mapping[str, float],
    now: float,
    ttl: float,
    low: float,
    high: float,
) -> dict[str, Load]:
    """Every region of one service, moved on to `now`: shares stepped toward their targets
    (each at most once per TTL), the increases capped by the others' room, and the share of
    the shed networks each region takes."""
    mid = (low + high) / 2
    loads = {
        name: (
            replace(x, level=None)
            if x.at is not None and now - x.at > STALE * ttl and x.level is not None
            else x
        )
        for name, x in prev.items()
    }
    wanted: dict[str, float] = {}
    for name, x in loads.items():
        if x.moved is not None and now - x.moved < ttl:
            wanted[name] = x.share
            continue
        goal = target(x.share, x.level, low, high)
        wanted[name] = quantize(x.share + max(-STEP, min(STEP, goal - x.share)))

    def size(name: str) -> float:
        return sizes.get(name, 1.0)

    def room(name: str) -> float:
        """What a region can take up to the band's middle. A region that reports no load is
        taken as idle, as routing takes it (capacity.share)."""
        x = loads[name]
        if wanted[name] > 0 or (x.level is not None and x.level >= high):
            return 0.0
        return max(0.0, mid - (x.level or 0.0)) * size(name)

    # The increases of shed load together are capped by the room the others have.
    extra = {
        name: (wanted[name] - x.share) * _demand(x) * size(name)
        for name, x in loads.items()
        if wanted[name] > x.share
    }
    if extra:
        space = sum(room(name) for name in loads if name not in extra)
        asked = sum(extra.values())
        if asked > space:
            scale = space / asked
            for name in extra:
                x = loads[name]
                more = (wanted[name] - x.share) * scale
                wanted[name] = x.share + math.floor(more / QUANTUM + 1e-9) * QUANTUM
    spill = sum(wanted[n] * _demand(x) * size(n) for n, x in loads.items() if wanted[n] > 0)
    out = {}
    for name, x in loads.items():
        share = wanted[name]
        moved = now if share != x.share else x.moved
        accept, took, accepted = _accept(x, share, spill, room(name), now, ttl, low, high)
        out[name] = replace(
            x, share=share, moved=moved, accept=accept, took=took, accepted=accepted
        )
    return out


def _accept(
    x: Load,
    share: float,
    spill: float,
    room: float,
    now: float,
    ttl: float,
    low: float,
    high: float,
) -> tuple[float, float, float | None]:
    """(accept, took, accepted): a region that sheds, or is above the band, takes no one
    else's networks (at once: never onto a region that cannot take them). Otherwise its
    share moves at most once per TTL, like a shed share: inside the band it is set to take
    as much load as it took (whatever the spill is now); below the band, that plus its room
    up to the band's middle, at most once per two TTLs."""
    if share > 0 or (x.level is not None and x.level >= high):
        return 0.0, 0.0, (x.accepted if x.accept == 0 else now)
    if spill <= 0:
        return 1.0, 0.0, x.accepted  # nothing to take: open to whatever comes first
    below = x.level is None or x.level < low
    # Growing waits two TTLs: one for resolvers to follow the last change, one for the
    # smoothed level to show it; otherwise the room it measures is room already given.
    wait = 2 * ttl if below else ttl
    if x.accepted is not None and now - x.accepted < wait:
        # Meanwhile it takes no more load than it took: a share of a growing spill shrinks.
        held = _quantum_below(x.took / spill)
        if held < x.accept - QUANTUM - 1e-9:
            return held, held * spill, now
        return x.accept, x.took, x.accepted
    base = x.took + (room if below else 0.0)
    accept = _quantum_below(base / spill)
    if not below and abs(accept - x.accept) <= QUANTUM + 1e-9:
        return x.accept, x.took, x.accepted  # in the band, a quantum either way is noise
    return accept, accept * spill, (now if accept != x.accept else x.accepted)


def _quantum_below(share: float) -> float:
    share = min(1.0, max(0.0, share))  # first: a tiny spill makes the ratio infinite
    return math.floor(share / QUANTUM + 1e-9) * QUANTUM


def _demand(x: Load) -> float:
    """The load the region would carry shedding nobody (its level if it sheds everyone)."""
    level = x.level or 0.0
    return level / (1 - x.share) if x.share < 1 else level
