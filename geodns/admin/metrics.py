"""/metrics: the control plane's counts as Prometheus families, built at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import dns.rcode
import dns.rdatatype
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from geodns.control.plane import ControlPlane
from geodns.control.rum import REPORT_RESULTS, SAMPLE_RESULTS
from geodns.health.state import Health
from geodns.routing import capacity
from geodns.server.stats import LATENCY_BOUNDS


def _qtype(qtype: int) -> str:
    return "unreadable" if qtype < 0 else dns.rdatatype.to_text(qtype)


def _rcode(rcode: int) -> str:
    return "none" if rcode < 0 else dns.rcode.to_text(rcode)


class PlaneCollector(Collector):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def collect(self) -> Iterator[Metric]:
        plane = self.plane
        yield from self._queries()
        yield from self._health()
        yield from self._rum()
        reloads = CounterMetricFamily(
            "geodns_config_reloads", "Zone reloads, by result", labels=["result"]
        )
        reloads.add_metric(["ok"], plane.reloads.ok)
        reloads.add_metric(["failed"], plane.reloads.failed)
        yield reloads
        yield GaugeMetricFamily(
            "geodns_config_last_reload_successful",
            "0 while the zone files on disk fail to load (the previous config serves on), 1 "
            "once a load succeeds: an alert on it lasts as long as the problem does",
            int(plane.reload_error is None),
        )
        yield GaugeMetricFamily(
            "geodns_config_version", "Config version serving (1 at start)", plane.config_version
        )
        yield GaugeMetricFamily(
            "geodns_config_loaded_timestamp_seconds",
            "When the serving config was loaded",
            plane.config_loaded,
        )
        info = GaugeMetricFamily("geodns_build_info", "geodns version", labels=["version"])
        info.add_metric([plane.version], 1)
        yield info
        if plane.geoip is not None:
            yield GaugeMetricFamily(
                "geodns_geoip_database_build_timestamp_seconds",
                "Build date of the GeoIP database in use",
                plane.geoip.build_date.timestamp(),
            )
            yield GaugeMetricFamily(
                "geodns_ecs_scopes_merged",
                "1 when ECS scopes are merged for the GeoIP database in use, else 0 "
                "(scopes are then the GeoIP networks)",
                int(plane.scopes is not None and plane.scopes.merged),
            )

    def _queries(self) -> Iterator[Metric]:
        stats = self.plane.query_stats()
        queries = CounterMetricFamily(
            "geodns_queries",
            "DNS queries answered (rcode none: dropped)",
            labels=["zone", "qtype", "rcode", "transport"],
        )
        answers = CounterMetricFamily(
            "geodns_answers",
            "Service-name answers, by the region whose address they carried",
            labels=["service", "region"],
        )
        refusals = CounterMetricFamily(
            "geodns_residency_refusals",
            "Service-name queries failed closed by a residency rule (its when_none answered: "
            "refuse, servfail, nodata or the in-jurisdiction endpoint), by the rule's index "
            "in the service's residency list, or unlocated",
            labels=["service", "rule"],
        )
        by_labels: dict[tuple[str, str, str, str], int] = {}
        by_region: dict[tuple[str, str], int] = {}
        # Every rule from zero, so that the first refusal is an increase, not a new series.
        by_rule: dict[tuple[str, str], int] = {}
        for service in self.plane.zones.services():
            for rule in service.residency:
                by_rule[(service.key, str(rule.index))] = 0
            if service.unlocated is not None:
                by_rule[(service.key, "unlocated")] = 0
        for transport, counts in stats.replies.items():
            for key, n in counts.items():
                labels = (key.zone, _qtype(key.qtype), _rcode(key.rcode), transport)
                by_labels[labels] = by_labels.get(labels, 0) + n
                for region in key.regions:
                    k = (key.service or "", region)
                    by_region[k] = by_region.get(k, 0) + n
                if key.residency is not None:
                    k = (key.service or "", key.residency)
                    by_rule[k] = by_rule.get(k, 0) + n
        for labels, n in sorted(by_labels.items()):
            queries.add_metric(list(labels), n)
        for labels, n in sorted(by_region.items()):
            answers.add_metric(list(labels), n)
        for labels, n in sorted(by_rule.items()):
            refusals.add_metric(list(labels), n)
        yield queries
        yield answers
        yield refusals
        cumulative = []
        running = 0
        for bound, n in zip(LATENCY_BOUNDS, stats.latency_buckets, strict=False):
            running += n
            cumulative.append((repr(bound), running))
        running += stats.latency_buckets[-1]
        cumulative.append(("+Inf", running))
        yield HistogramMetricFamily(
            "geodns_query_duration_seconds",
            "Time from a query's bytes to its reply's, in the worker",
            buckets=cumulative,
            sum_value=stats.latency_sum,
        )
        decisions = CounterMetricFamily(
            "geodns_decision_cache",
            "Service-name queries by whether their client network's decision was cached",
            labels=["result"],
        )
        decisions.add_metric(["hit"], stats.decision_hits)
        decisions.add_metric(["miss"], stats.decision_misses)
        yield decisions
        rrl = CounterMetricFamily(
            "geodns_rrl_replies",
            "UDP replies over the response rate limit: sent truncated (slipped) or not sent "
            "(dropped); also counted in geodns_queries_total as answered",
            labels=["action"],
        )
        rrl.add_metric(["slipped"], stats.rrl_slipped)
        rrl.add_metric(["dropped"], stats.rrl_dropped)
        yield rrl

    def _health(self) -> Iterator[Metric]:
        plane = self.plane
        snapshot = plane.state
        checks = CounterMetricFamily(
            "geodns_health_checks",
            "Health probes, by result",
            labels=["service", "region", "result"],
        )
        durations = SummaryMetricFamily(
            "geodns_health_check_duration_seconds",
            "Time health probes took",
            labels=["service", "region"],
        )
        state = GaugeMetricFamily(
            "geodns_region_state",
            "1 for the region's current state (up, down, drain)",
            labels=["service", "region", "state"],
        )
        forced = GaugeMetricFamily(
            "geodns_region_forced",
            "1 when an operator forced the state",
            labels=["service", "region"],
        )
        utilization = GaugeMetricFamily(
            "geodns_region_gpu_utilization_ratio",
            "GPU utilization the region reports, 0..1",
            labels=["service", "region"],
        )
        model = GaugeMetricFamily(
            "geodns_region_model_version_info",
            "1 for the model version the region reports",
            labels=["service", "region", "version"],
        )
        shed = GaugeMetricFamily(
            "geodns_region_shed_ratio",
            "Share of the region's client networks answered with another region to spare its "
            "capacity, 0..1 (1: it takes no clients), as answers are decided now",
            labels=["service", "region"],
        )
        accept = GaugeMetricFamily(
            "geodns_region_accept_ratio",
            "Share of the client networks other regions shed that this region takes, 0..1",
            labels=["service", "region"],
        )
        # Read off the published state, the one answers are decided on (not the newest
        # probe figures), through the rule every routing decision reads.
        published = plane.published
        for service in plane.zones.services():
            for region in service.regions:
                labels = [service.key, region.name]
                st = snapshot.get(service.key, region.name)
                for h in Health:
                    state.add_metric([*labels, str(h)], 1 if st.health is h else 0)
                forced.add_metric(labels, 0 if st.forced is None else 1)
                if st.utilization is not None:
                    utilization.add_metric(labels, st.utilization)
                if st.version is not None:
                    model.add_metric([*labels, st.version], 1)
                shares = capacity.share(published.get(service.key, region.name), service.capacity)
                shed.add_metric(labels, shares[0])
                accept.add_metric(labels, shares[1])
                counts = plane.monitor.stats.get((service.key, region.name))
                if counts is not None:
                    checks.add_metric([*labels, "ok"], counts.ok)
                    checks.add_metric([*labels, "failed"], counts.failed)
                    durations.add_metric(labels, counts.ok + counts.failed, counts.total_duration)
        yield from (checks, durations, state, forced, utilization, model, shed, accept)

    def _rum(self) -> Iterator[Metric]:
        rum = self.plane.rum
        reports = CounterMetricFamily(
            "geodns_rum_reports",
            "Reports of measured latency (POST /api/rum), accepted or refused by reason",
            labels=["result"],
        )
        for result in REPORT_RESULTS:
            reports.add_metric([result], rum.reports[result])
        samples = CounterMetricFamily(
            "geodns_rum_samples",
            "Samples in accepted reports: accepted, or dropped by reason",
            labels=["result"],
        )
        for result in SAMPLE_RESULTS:
            samples.add_metric([result], rum.samples[result])
        areas = GaugeMetricFamily(
            "geodns_rum_areas",
            "Client areas holding samples, by level (network: /24 or /48)",
            labels=["level"],
        )
        for level, count in rum.aggregator.areas().items():
            areas.add_metric([level], count)
        yield from (reports, samples, areas)


class FleetSource(Protocol):
    def fleet_view(self) -> dict[str, Any]: ...


class FleetCollector(Collector):
    """The shared store and the fleet from ControlPlane.fleet_view(): is the store there,
    how far this node has followed it, do the nodes agree, how each region's votes stand."""

    def __init__(self, plane: FleetSource) -> None:
        self.plane = plane

    def collect(self) -> Iterator[Metric]:
        return fleet_metrics(self.plane.fleet_view())


def fleet_metrics(view: dict[str, Any]) -> Iterator[Metric]:
    store = view["store"]
    connected = GaugeMetricFamily(
        "geodns_store_connected",
        "1 while the shared store answers this node (kind: embedded or etcd), else 0",
        labels=["kind"],
    )
    connected.add_metric([store["kind"]], int(bool(store["connected"])))
    yield connected
    yield GaugeMetricFamily(
        "geodns_store_revision",
        "Revision of the shared state this node has (the store's, as of its last event)",
        store["revision"],
    )
    yield CounterMetricFamily(
        "geodns_store_lost", "Times this node lost the shared store since it started", store["lost"]
    )
    if store.get("round_trip_seconds") is not None:
        yield GaugeMetricFamily(
            "geodns_store_round_trip_seconds",
            "Time from this node's latest commit to the store until its watch brought it back",
            store["round_trip_seconds"],
        )
    yield GaugeMetricFamily(
        "geodns_fleet_nodes",
        "Live geodns nodes in the shared store, this one included",
        len(view["nodes"]),
    )
    yield GaugeMetricFamily(
        "geodns_fleet_disagreeing_nodes",
        "Live nodes whose routing state differs from this node's",
        len(view["disagree"]),
    )
    votes = GaugeMetricFamily(
        "geodns_region_votes",
        "Fresh health votes of the fleet's nodes for the region, by vote (up or down)",
        labels=["service", "region", "health"],
    )
    quorum = GaugeMetricFamily(
        "geodns_region_quorum_up",
        "1 when the fleet's votes make the region up under its quorum policy, 0 down; "
        "absent while no node has checked it",
        labels=["service", "region"],
    )
    for service, regions in sorted(view["votes"].items()):
        for region, verdict in sorted(regions.items()):
            votes.add_metric([service, region, "up"], verdict["up"])
            votes.add_metric([service, region, "down"], verdict["down"])
            if verdict["result"] is not None:
                quorum.add_metric([service, region], int(verdict["result"] == "up"))
    yield votes
    yield quorum


class LoadPushCollector(Collector):
    """Pushed loads (POST /api/services/S/regions/R/load), by result: a closed set."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        pushes = CounterMetricFamily(
            "geodns_load_pushes", "Pushed region loads, by result", labels=["result"]
        )
        for result, n in self.counts.items():
            pushes.add_metric([result], n)
        yield pushes


class AdminActionsCollector(Collector):
    """Admin API changes made with a valid token (the audit log's records), by action and
    result: both closed sets."""

    def __init__(self, counts: dict[tuple[str, str], int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        actions = CounterMetricFamily(
            "geodns_admin_actions",
            "Admin API changes, by action and result (ok, refused, failed)",
            labels=["action", "result"],
        )
        for (action, result), n in self.counts.items():
            actions.add_metric([action, result], n)
        yield actions


def registry_for(plane: ControlPlane) -> CollectorRegistry:
    """The server's one registry: the plane's and the fleet's families, and the process's
    (process_*: CPU, memory, file descriptors; python_*: version, garbage collection) that
    prometheus_client puts only in its global registry, which a server of its own leaves."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlaneCollector(plane))
    registry.register(FleetCollector(plane))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
