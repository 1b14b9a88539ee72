"""What the dashboard and /api/state show: the control plane's state as plain JSON.

No filesystem path is shown: files by their name only (the GeoIP database), and an
absolute path inside a message (a reload or scope-build error) cut to its last two parts,
`…/zones/example.com.yaml`. The server's log has them whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from geodns.control.plane import ControlPlane
from geodns.geo.geoip import GeoRecord
from geodns.geo.locate import Client
from geodns.geo.rum import Estimate, MeasuredLatency
from geodns.health.state import StateSnapshot
from geodns.routing import capacity, residency
from geodns.routing.pipeline import Decision, route
from geodns.server.geoanswer import latency_for
from geodns.versions.rollout import to_json
from geodns.zones.model import Service

# Okabe-Ito: told apart by people with every common colour-vision deficiency.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
# A stand-in network for a whole country: capacity shedding hashes the client network,
# and one fixed network shows what a typical network of that country gets.
_COUNTRY_NETWORK = ipaddress.ip_network("0.0.0.0/0")
# Where that depends on the network: this many /24 buckets, routed each (country_shares).
SHARE_SAMPLES = 32
_SAMPLE_NETWORKS = tuple(ipaddress.ip_network(f"10.{i}.0.0/24") for i in range(SHARE_SAMPLES))
# An absolute path inside a message: "/" starting a word, then "/"-separated parts.
_ABSOLUTE_PATH = re.compile(r"(?<![\w./:])/(?:[^\s/'\":,()\[\]]+/)*[^\s/'\":,()\[\]]+")


def without_paths(text: str) -> str:
    """`text` with each absolute path cut to its last two parts: which file, not where."""

    def cut(match: re.Match[str]) -> str:
        parts = match.group(0).split("/")[1:]
        return match.group(0) if len(parts) <= 2 else "…/" + "/".join(parts[-2:])

    return _ABSOLUTE_PATH.sub(cut, text)


@lru_cache(maxsize=1)
def countries() -> dict[str, dict[str, Any]]:
    """ISO alpha-2 -> name, continent, a point inside the country (Natural Earth, GeoNames)."""
    text = (resources.files("geodns") / "data" / "countries.json").read_text()
    return json.loads(text)


def country_shares(service: Service, state: StateSnapshot, code: str) -> dict[str, float]:
    """How the client networks of a country split among regions now: SHARE_SAMPLES networks
    of it routed as the servers route them, and the share each region comes first for
    ("" for refused). Shedding and canaries hash the client's /24 or /56 (routing.context
    .bucket), so a share of buckets is the share of client networks, to 1/SHARE_SAMPLES."""
    latency = latency_for(service)
    record = _record(code)
    tally: dict[str, float] = {}
    for network in _SAMPLE_NETWORKS:
        client = Client(network.network_address, None, network, record)
        first = _first(route(client, service, state, latency)) or ""
        tally[first] = tally.get(first, 0.0) + 1 / len(_SAMPLE_NETWORKS)
    return {region: round(share, 4) for region, share in sorted(tally.items())}


def _country_decisions(service: Service, state: StateSnapshot) -> Iterator[tuple[str, Decision]]:
    latency = latency_for(service)
    for code in countries():
        client = Client(_COUNTRY_NETWORK.network_address, None, _COUNTRY_NETWORK, _record(code))
        yield code, route(client, service, state, latency)


def _record(code: str) -> GeoRecord:
    c = countries()[code]
    return GeoRecord(code, c["continent"], None, c["lat"], c["lon"])


def _first(decision: Decision) -> str | None:
    chosen = decision.select(4) or decision.select(6)
    return chosen[0][0].name if decision.outcome is None and chosen else None


MEASURED_NETWORKS = 20  # client networks shown, those with the most samples first


def measured_view(measured: MeasuredLatency, now: float) -> dict[str, Any]:
    """Latency measured by clients (docs/rum.md) as the dashboard shows it: per area (every
    continent and country, and the client networks with the most samples), per region
    the estimate, its samples and age, and whether routing may use it yet."""
    least = measured.settings.min_samples

    def rows(level: str, table: Mapping[str, Mapping[str, Estimate]]) -> list[dict[str, Any]]:
        return [
            {
                "area": area,
                "level": level,
                "regions": {region: est.to_json(now, least) for region, est in sorted(row.items())},
            }
            for area, row in table.items()
        ]

    def weight(row: Mapping[str, Estimate]) -> int:
        return sum(est.samples for est in row.values())

    busiest = sorted(measured.networks.items(), key=lambda kv: (-weight(kv[1]), kv[0]))
    return {
        "min_samples": least,
        "max_age": measured.settings.max_age,
        "stabilize_ms": measured.settings.stabilize_ms,
        "stabilize_percent": measured.settings.stabilize_percent,
        "areas": rows("continent", dict(sorted(measured.continents.items())))
        + rows("country", dict(sorted(measured.countries.items())))
        + rows("network", dict(busiest[:MEASURED_NETWORKS])),
        "networks": len(measured.networks),
    }


def fleet(view: dict[str, Any]) -> dict[str, Any]:
    """The control plane's fleet_view() without paths: the embedded store is described by
    its file, and a store's errors and the problems it found may name files too."""
    store = dict(view["store"])
    store["description"] = without_paths(store["description"])
    if isinstance(store.get("error"), str):
        store["error"] = without_paths(store["error"])
    store["problems"] = [without_paths(p) for p in store.get("problems", ())]
    votes = {
        service: {
            region: {
                **verdict,
                "reason": without_paths(verdict["reason"]),
                "votes": {
                    node: {**vote, "error": _maybe_without_paths(vote.get("error"))}
                    for node, vote in verdict["votes"].items()
                },
            }
            for region, verdict in regions.items()
        }
        for service, regions in view["votes"].items()
    }
    return {**view, "store": store, "votes": votes}


def _maybe_without_paths(text: str | None) -> str | None:
    return None if text is None else without_paths(text)


class StateView:
    """Builds /api/state; the country maps are recomputed only when routing could change.

    A country whose answer depends on the client network (a region shedding a share, a
    canary) is shown by its shares (country_shares), which cost SHARE_SAMPLES routings
    each: they are worked out in a task, a country per turn of the loop, since this loop
    also answers DNS, and shown once all are known; until then such a country shows what
    one network of it gets, as every country did before."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._maps_for: tuple[int, int] | None = None
        self._maps: dict[str, dict[str, str | None]] = {}
        self._split: dict[str, list[str]] = {}  # service -> its split countries
        self._shares_for: tuple[int, int] | None = None
        self._shares: dict[str, dict[str, dict[str, float]]] = {}  # service -> country -> shares
        self._sharing: asyncio.Task | None = None

    def _country_maps(self) -> dict[str, dict[str, str | None]]:
        plane = self.plane
        published = plane.published
        key = (plane.config_version, published.version)
        if key != self._maps_for:
            services = plane.zones.services()
            self._maps, self._split = {}, {}
            for service in services:
                decisions = list(_country_decisions(service, published))
                self._maps[service.key] = {code: _first(d) for code, d in decisions}
                self._split[service.key] = [code for code, d in decisions if d.by_network]
            self._maps_for = key
            self._start_shares(key, published, services)
        return self._maps

    def _start_shares(
        self, key: tuple[int, int], state: StateSnapshot, services: list[Service]
    ) -> None:
        if self._sharing is not None:
            self._sharing.cancel()
            self._sharing = None
        work = self._shares_of(key, state, services)
        try:
            self._sharing = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop (a direct call): work them out now
            with contextlib.suppress(StopIteration):
                work.send(None)

    async def _shares_of(
        self, key: tuple[int, int], state: StateSnapshot, services: list[Service]
    ) -> None:
        shares: dict[str, dict[str, dict[str, float]]] = {}
        for service in services:
            for code in self._split.get(service.key, ()):
                shares.setdefault(service.key, {})[code] = country_shares(service, state, code)
                if self._sharing is not None:
                    await asyncio.sleep(0)  # a country a turn: the loop answers meanwhile
        self._shares, self._shares_for = shares, key

    def _countries(self, service: str) -> tuple[dict[str, str | None], dict[str, dict[str, float]]]:
        """The region each country goes to (the largest share where it splits), and the
        shares of the countries that split, once known for the current maps."""
        regions = dict(self._maps.get(service, {}))
        shares = self._shares.get(service, {}) if self._shares_for == self._maps_for else {}
        for code, split in shares.items():
            regions[code] = max(split, key=lambda r: (split[r], r)) or None
        return regions, shares

    def _rollout_phase(self, service: str, region: str) -> str | None:
        """draining | updated while a rollout of the service is active, else None."""
        rollout = self.plane.guard.rollouts.get(service)
        if rollout is None or not rollout.active or region not in rollout.regions:
            return None
        return rollout.regions[region].phase

    def _versions(self, service: Service) -> dict[str, Any]:
        judged = self.plane.published.versions.get(service.key)
        rollout = self.plane.guard.rollouts.get(service.key)
        return {
            "approved": [] if judged is None else sorted(judged.approved),
            "canary": None if judged is None else judged.canary,
            "seen": [] if judged is None else sorted(judged.seen),
            "rollout": None if rollout is None else to_json(rollout),
        }

    def _force_of(self, service: str, region: str, forced: object) -> dict[str, Any]:
        """Who set the operator force a region is under now, and when; None for a rollout's
        drain or no force."""
        kept = self.plane.kept_force(service, region)
        if kept is None or kept.state != forced:
            return {"forced_by": None, "forced_at": None}
        return {"forced_by": kept.by, "forced_at": kept.set_at}

    def _scopes(self) -> dict[str, Any]:
        scopes = self.plane.scopes
        if scopes is None:
            return {"state": "off"}
        status = dict(scopes.status())
        status.pop("cache_dir", None)  # a path
        if isinstance(status.get("error"), str):
            status["error"] = without_paths(status["error"])
        return status

    def state(self, demo: bool = False) -> dict[str, Any]:
        plane = self.plane
        snapshot = plane.state
        answers = plane.answers_last_minute()
        self._country_maps()
        geoip = plane.geoip
        reload_error = plane.reload_error
        out_services = []
        for service in plane.zones.services():
            regions = []
            for i, region in enumerate(service.regions):
                st = snapshot.get(service.key, region.name)
                # The share of its client networks it sheds, and the share of other regions'
                # shed networks it takes (docs/capacity.md).
                shed, accept = capacity.share(st, service.capacity)
                regions.append(
                    {
                        "name": region.name,
                        "state": str(st.health),
                        "checked": None if st.checked is None else str(st.checked),
                        "forced": None if st.forced is None else str(st.forced),
                        **self._force_of(service.key, region.name, st.forced),
                        "since": st.since,
                        "last_check": st.last_check,
                        "latency_ms": None
                        if st.last_latency is None
                        else round(st.last_latency * 1000, 1),
                        "error": st.last_error,
                        "utilization": st.utilization,
                        "shed": shed,
                        "accept": accept,
                        "version": st.version,
                        "answers_last_minute": answers.get((service.key, region.name), 0),
                        "addresses": list(region.addresses),
                        "location": None
                        if region.lat is None
                        else {"lat": region.lat, "lon": region.lon},
                        "color": PALETTE[i % len(PALETTE)],
                        "rollout": self._rollout_phase(service.key, region.name),
                        # Whom a drain of this region would leave with no region: the page
                        # asks before such a drain (routing.residency decides, not the page).
                        "drain_strands": [
                            {
                                "rule": rule.index,
                                "clients": rule.clients.description,
                                "outcome": residency.fail_closed_outcome(rule.when_none),
                            }
                            for rule in residency.stranded_by_drain(service, snapshot, region.name)
                        ],
                    }
                )
            routed, shares = self._countries(service.key)
            out_services.append(
                {
                    "name": service.key,
                    "ttl": service.ttl,
                    "answers": service.answers,
                    "regions": regions,
                    "countries": routed,
                    "country_shares": shares,
                    "versions": self._versions(service),
                }
            )
        return {
            "server": {
                "version": plane.version,
                "started": plane.started,
                "now": plane.clock(),
                "config_version": plane.config_version,
                "config_loaded": plane.config_loaded,
                "reload_error": None
                if reload_error is None
                else {
                    "time": reload_error.time,
                    "errors": [without_paths(e) for e in reload_error.errors],
                },
                "geoip": None
                if geoip is None
                else {
                    "file": os.path.basename(geoip.path),
                    "build_date": geoip.build_date.date().isoformat(),
                    "attribution": geoip.attribution,
                    "ecs_scopes": self._scopes(),
                },
                # Operator forces kept in the shared store (geodns.store.shared) for regions
                # the zones do not have: kept, so that they come back with the region.
                "ignored_forces": [
                    {
                        "service": f.service,
                        "region": f.region,
                        "state": str(f.state),
                        "set_at": f.set_at,
                        "by": f.by,
                    }
                    for f in plane.ignored_forces()
                ],
                "demo": demo,
            },
            "services": out_services,
            "fleet": fleet(plane.fleet_view()),
            "measured": measured_view(plane.published.measured, plane.clock()),
            "changes": [
                {
                    "time": t.time,
                    "service": t.service,
                    "region": t.region,
                    "from": str(t.old),
                    "to": str(t.new),
                    "reason": t.reason,
                }
                for t in reversed(plane.monitor.changes)
            ],
        }
