#!/usr/bin/env python3
"""Microbenchmark: the routing decision for client networks not yet in the decision cache.

Over N random public IPv4 clients (default 100,000) located in the embedded DB-IP City
Lite database (or --geoip-database), it times, in-process and each on its own:

  locate()   geodns.geo.locate.locate(db, address): the GeoIP lookup and the network
  route()    geodns.routing.pipeline.route(client, service, state, latency): the steps
  resolve    GeoAnswers.resolve (route plus the ECS scope) and the answer's sections as
             dnspython objects, then encode_resolution: what the server does for a network
             it has no decision for, minus the query's parsing and the socket
  answer()   Answerer.answer() on a query with ECS /24 from each client, through a fresh
             Answerer: the server's whole code path without sockets, where clients that
             share a network (and decision) with an earlier one hit the decision cache

route() is timed twice: with every region up and idle, and with us-east-1 at 85% GPU
utilization, between the service's watermarks, so that the capacity step hashes each
client network. Target (issue 4): route() under 50 us per call.

    python bench/route_micro.py
    python bench/route_micro.py --clients 20000 --repeat 1      # quicker
    python bench/route_micro.py --json bench/results/route_micro.json
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.name
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZONE = ROOT / "zones" / "example.com.yaml"
SERVICE = "inference"
TARGET_ROUTE_US = 50.0


def random_public_ipv4(count: int, seed: int) -> list[ipaddress.IPv4Address]:
    """`count` random IPv4 addresses that are global and in no special-purpose block."""
    from geodns.geo.locate import special_prefix

    rng = random.Random(seed)
    out: list[ipaddress.IPv4Address] = []
    while len(out) < count:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and special_prefix(address) is None:
            out.append(address)
    return out


def timed(fn: Callable[[object], object], items: list, repeat: int) -> dict:
    """Mean microseconds per call over `items` (median of `repeat` passes), then one more
    pass timing each call for the percentiles."""
    means = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for item in items:
            fn(item)
        means.append((time.perf_counter_ns() - start) / len(items) / 1000)
    samples = []
    clock = time.perf_counter_ns
    for item in items:
        t0 = clock()
        fn(item)
        samples.append(clock() - t0)
    samples.sort()

    def pct(p: float) -> float:
        return round(samples[min(len(samples) - 1, int(p * len(samples)))] / 1000, 2)

    return {
        "mean_us": round(statistics.median(means), 2),
        "pass_means_us": [round(m, 2) for m in means],
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "max_us": round(samples[-1] / 1000, 1),
    }


def profile_route(clients: list, fn: Callable[[object], object]) -> None:
    """cProfile over route() for every client: where its microseconds go (profiling
    itself slows every call down, so read the shares, not the totals)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for client in clients:
        fn(client)
    profiler.disable()
    print("\nroute() profile, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--clients", type=int, default=100_000, help="random clients (default 100000)")
    p.add_argument("--seed", type=int, default=4, help="random seed (default 4)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the median is shown")
    p.add_argument(
        "--geoip-database", metavar="MMDB", help="default: the embedded DB-IP City Lite file"
    )
    p.add_argument("--zone", type=Path, default=DEFAULT_ZONE, help="zone with the service")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    p.add_argument(
        "--profile", action="store_true", help="also print cProfile's top functions in route()"
    )
    args = p.parse_args(argv)
    if args.clients < 1 or args.repeat < 1:
        p.error("--clients and --repeat must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.harness import git_revision, write_json
    from geodns import __version__
    from geodns.control.scopebuild import build, default_cache_dir
    from geodns.control.scopes import build_request, load_cached
    from geodns.geo.geoip import GeoIPDatabase
    from geodns.geo.locate import locate
    from geodns.health.state import ALL_UP, Health, RegionState
    from geodns.routing.pipeline import route
    from geodns.server.answer import Answerer, Peer, encode_resolution
    from geodns.server.geoanswer import SERVICE as SERVICE_KIND
    from geodns.server.geoanswer import GeoAnswers, latency_for
    from geodns.zones.loader import load_zones

    zones = load_zones([args.zone])
    db = GeoIPDatabase(args.geoip_database)
    geo = GeoAnswers(zones, ALL_UP, db)
    dyn = next(
        d
        for d in geo.names.values()
        if d.kind == SERVICE_KIND and d.service.key.split(".")[0] == SERVICE
    )
    service = dyn.service
    latency = latency_for(service)
    qname = dns.name.from_text(service.key)
    rt_a = dns.rdatatype.A
    busy = ALL_UP.with_region(service.key, "us-east-1", RegionState(Health.UP, 0.85))

    print(
        f"geodns {__version__} at {git_revision()}; "
        f"{args.clients:,} random public IPv4 clients, seed {args.seed}; service "
        f"{service.key} ({len(service.regions)} regions); GeoIP {db.database_type} built "
        f"{db.build_date.date()} ({'embedded' if db.embedded else db.path}), maxminddb "
        f"{'C extension' if db.c_extension else 'pure-Python reader'}",
        file=sys.stderr,
    )
    addresses = random_public_ipv4(args.clients, args.seed)
    clients = [locate(db, a) for a in addresses]

    def resolution(result: object) -> object:
        # GeoResult carried its Resolution; newer code builds it on demand.
        res = getattr(result, "resolution", None)
        return res if res is not None and not callable(res) else geo.resolution(result)

    def full(address: ipaddress.IPv4Address) -> object:
        client = locate(db, address)
        result = geo.resolve(dyn, rt_a, client)
        return encode_resolution(qname, rt_a, 1, resolution(result))

    def resolve_encode(client: object) -> object:
        result = geo.resolve(dyn, rt_a, client)
        return encode_resolution(qname, rt_a, 1, resolution(result))

    queries = []
    for a in addresses:
        ecs = dns.edns.ECSOption(str(a), 24)
        q = dns.message.make_query(qname, "A", use_edns=0, options=[ecs])
        q.id = 0
        queries.append(q.to_wire())
    peer = Peer("192.0.2.53", 5300, "udp")
    networks24 = {locate(db, a, 24).network for a in addresses}

    results: dict[str, dict] = {}
    steps = [
        ("locate()", lambda a: locate(db, a), addresses),
        ("route(), all regions idle", lambda c: route(c, service, ALL_UP, latency), clients),
        ("route(), us-east-1 at 85%", lambda c: route(c, service, busy, latency), clients),
        ("resolve + encode", resolve_encode, clients),
        ("locate + resolve + encode", full, addresses),
    ]
    for label, fn, items in steps:
        print(f"  timing {label}...", file=sys.stderr)
        results[label] = timed(fn, items, args.repeat)
    # The Answerer keeps its caches between passes: time the first pass only, from a fresh
    # one, so that every client's network is as new as random sampling makes it. Then the
    # same with merged ECS scopes, one more binary search per uncached network; the runs
    # come from the server's cache, or are built here first (untimed).
    build(build_request(db, zones, default_cache_dir()))
    merged = load_cached(db, zones, default_cache_dir())
    assert merged is not None
    for label, scopes in (("", None), (", merged scopes", merged)):
        print(f"  timing Answerer.answer(){label}...", file=sys.stderr)
        answerer = Answerer(zones, state=ALL_UP, geoip=db)
        if scopes is not None:
            answerer.geo.set_scopes(*scopes)
        start = time.perf_counter_ns()
        for wire in queries:
            answerer.answer(wire, peer)
        results[f"Answerer.answer(), ECS /24{label}"] = {
            "mean_us": round((time.perf_counter_ns() - start) / len(queries) / 1000, 2),
            "distinct_networks": len(networks24),
        }

    # The ECS scope each client's answer claims: the GeoIP network's prefix, then merged.
    scopes: dict[str, dict[str, float]] = {}
    for kind, runs in (("GeoIP networks", {}), ("merged", merged[1])):
        geo.set_scopes(merged[0], runs)
        prefixes = [geo.resolve(dyn, rt_a, c).scope_prefix for c in clients]
        scopes[kind] = {
            "median": statistics.median(prefixes),
            "mean": round(statistics.fmean(prefixes), 2),
        }

    # What the clients were: how the order step decided, and residency.
    located = sum(c.record is not None for c in clients)
    how: Counter[str] = Counter()
    regions: Counter[str] = Counter()
    for c in clients:
        decision = route(c, service, ALL_UP, latency)
        reason = decision.steps[-1].reason
        how[" ".join(reason.split()[:2]).rstrip(":")] += 1
        regions[decision.regions[0].name if decision.regions else decision.outcome or "-"] += 1

    report = {
        "machine": {
            "python": platform.python_version(),
            "geodns": __version__,
            "git": git_revision(),
            "gc_enabled": gc.isenabled(),
            "maxminddb_c_extension": db.c_extension,
            "geoip": {
                "type": db.database_type,
                "built": str(db.build_date.date()),
                "path": db.path,
                "embedded": db.embedded,
            },
        },
        "clients": args.clients,
        "seed": args.seed,
        "located": located,
        "order_by": dict(how),
        "first_region": dict(regions),
        "timings": results,
        "ecs_scope": scopes,
        "target_route_us": TARGET_ROUTE_US,
    }
    print()
    print(
        f"{len(clients):,} clients: {located:,} located; order by {dict(how)}; "
        f"first region {dict(regions)}"
    )
    print(f"{'step':<30} {'mean us':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>8}")
    for label, t in results.items():
        if "p50_us" in t:
            print(
                f"{label:<30} {t['mean_us']:>8.2f} {t['p50_us']:>7.2f} {t['p90_us']:>7.2f} "
                f"{t['p99_us']:>7.2f} {t['max_us']:>8.1f}"
            )
        else:
            print(f"{label:<30} {t['mean_us']:>8.2f}")
    print(
        f"(Answerer.answer(): {len(queries):,} queries from {len(networks24):,} distinct "
        "client networks, so about "
        f"{100 * (1 - len(networks24) / len(queries)):.0f}% of them hit the decision cache)"
    )
    print(
        "ECS scope of these clients' answers, median (mean): "
        + ", ".join(f"{k} /{v['median']:g} ({v['mean']:g})" for k, v in scopes.items())
    )
    if args.profile:
        profile_route(clients, lambda c: route(c, service, ALL_UP, latency))
    route_us = results["route(), all regions idle"]["mean_us"]
    verdict = "met" if route_us < TARGET_ROUTE_US else "MISSED"
    print(f"target: route() under {TARGET_ROUTE_US:g} us: {route_us:.1f} us, {verdict}")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
