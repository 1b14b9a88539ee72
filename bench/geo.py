#!/usr/bin/env python3
"""Benchmark geodns's geo answers (ECS) against PowerDNS's GeoIP backend and gdnsd's geoip plugin.

All three serve `inference.example.com` from the same test GeoIP database (the one the
tests build, tests/geo_fixtures.py) and answer each client continent with the same
region as geodns does (EU -> eu-west-1 by residency; NA, SA -> us-east-1; AS, OC ->
ap-northeast-1; AF -> eu-west-1; unlocated -> the service's default order). Before
measuring, every server is asked an A query with EDNS Client Subnet from each test
country (plus IPv6, unlocated and no-ECS clients): their addresses must agree, and each
one's ECS scope is shown. Then each server in turn, pinned to core 1, is loaded by
dnsperf pinned to core 0 with one dnsperf per country subnet, all at once.

Why at once rather than one country after another: dnsperf's -E puts the same ECS option
in every query of a run, so several subnets need several dnsperf processes. Run together,
each server sees the countries interleaved for the whole run, as a server does from many
resolvers, and the load is that of the static benchmark (-c 10 -q 500 shared out: 8
processes of -c 1 -q 62 -T 1) on the same one core; in sequence, each country would get an
eighth of the run and every server eight ramp-ups and tails. The figures are the sums of
the processes' (qps, counts) and their latencies combined (bench/harness.py merge_dnsperf).

Many-subnet mode (--subnets N): with one subnet, every answer after the first is a cache
hit; real resolvers and floods send ECS from hundreds of thousands of client networks.
Here all three servers read one real database (geodns's embedded DB-IP City Lite, or
--geoip-database), and one dnsperf (-B) reads a binary query file written by
bench/geoquery.py: --queries A queries, each with ECS from one of N distinct /24s (or
/56s with --family 6) that the database locates, uniform or 20/80 skewed (--zipf). As
the real database has about 250 countries, PowerDNS and gdnsd get a map per country
(what geodns orders for that country by the shipped latency table; EU by residency), and
a sample of the subnets (--sample) is asked of every server first: differences are
listed, explained ones apart (a country geodns orders by distance), and more than 2%
unexplained fails the run. Each round runs every server saturated, through the file once
(qps, lost), then at a fixed rate all can hold (--rate, dnsperf -Q: the server's CPU per
query from /proc, not skewed by how hard dnsperf pushes); the peak RSS of each server's
processes is sampled throughout. dnsperf starts at the top of a file on every run: the
fixed-rate run reads a file of its own (the same subnets, another order), so that it does
not replay queries the saturated run just put in the servers' caches.

    python bench/geo.py                  # 10 s runs, 3 interleaved rounds
    python bench/geo.py --quick          # 2 s runs, one round: proves it works
    python bench/geo.py --no-ecs         # plain queries: a resolver that sends no ECS
    python bench/geo.py --json bench/results/geo.json
    python bench/geo.py --subnets 100000             # 1,000,000 queries, 3 rounds
    python bench/geo.py --subnets 100000 --family 6 --quick   # 50,000 queries, 1 round
    python bench/geo.py --subnets 100000 --zipf      # 20% of subnets get 80% of queries

Needs pdns-server, pdns-backend-geoip, gdnsd, dnsperf and taskset (Debian: apt install
pdns-server pdns-backend-geoip gdnsd dnsperf), and the test extras (mmdb-writer) for the
database. PowerDNS and gdnsd run in the foreground as children, with their configuration,
sockets and state in a temporary directory and listening on 127.0.0.1 only; Debian's own
services are not used. Logs, generated configurations and dnsperf's raw output go to
bench/results/logs/geo/. Exits 1 if a server fails to start, the servers' answers differ,
or dnsperf fails.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.geoagree import agree  # noqa: E402
from bench.geoload import dnsperf_commands, measure, report_run  # noqa: E402
from bench.georeport import (  # noqa: E402
    add_rate_figures,
    disturbed_runs,
    print_report,
    rate_summary,
    ratios,
)
from bench.geoservers import (  # noqa: E402
    PDNS_DISTRIBUTORS,
    GeoServer,
    add_servers,
    debian_versions,
    log_findings,
    port53_listeners,
)
from bench.geoservice import (  # noqa: E402
    SERVERS,
    SERVICE,
    Client,
    read_service,
    subnet_clients,
    test_clients,
)
from bench.harness import (  # noqa: E402
    BACKGROUND_SAMPLE,
    DEFAULT_CLIENTS,
    DEFAULT_OUTSTANDING,
    NO_PINNING,
    SETTLE,
    BenchError,
    Result,
    add_common_arguments,
    git_revision,
    machine_info,
    pinning,
    quick_defaults,
    run_bench,
    start_all,
    stop_all,
    tool_version,
    write_json,
)

DEFAULT_ZONE = ROOT / "zones" / "example.com.yaml"
DEFAULT_LOGS = ROOT / "bench" / "results" / "logs" / "geo"
SCOPES_TIMEOUT = 600  # seconds for geodns to merge a real database's ECS scopes
# The fixed-rate run: a rate all three hold with a margin. One worker of geodns answers
# about 80,000 uncached q/s on this 2-core machine, PowerDNS about 50,000, gdnsd about
# 170,000 (5,000 while geodns held only 7,600-15,000). At low rates every server's CPU per
# query is mostly the wakeup per datagram (docs/performance-geo.md); --rate 5000 shows it.
DEFAULT_RATE = 30_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--duration",
        type=float,
        help="seconds per dnsperf run (default: 10; with --subnets, a saturated run goes\n"
        "through the query file once unless this is given)",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"dnsperf -c in all, shared among the subnets (default: {DEFAULT_CLIENTS})",
    )
    p.add_argument(
        "--outstanding",
        type=int,
        default=DEFAULT_OUTSTANDING,
        help=f"dnsperf -q in all, shared among the subnets (default: {DEFAULT_OUTSTANDING})",
    )
    p.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=list(SERVERS),
        help="which servers to run (default: all three)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="geodns worker processes (default: 1); with more than 1, geodns is pinned to\n"
        "cores 1..N when the machine has them (dnsperf keeps core 0), else not pinned:\n"
        "how to measure its scaling on a machine with more cores",
    )
    p.add_argument(
        "--countries",
        nargs="+",
        metavar="CC",
        help="test countries to load with (default: all: GB DE FR US BR JP AU ZA)",
    )
    p.add_argument(
        "--no-ecs",
        action="store_true",
        help="load with plain queries (no EDNS), as from a resolver that sends no ECS: every\n"
        "server then locates 127.0.0.1 and answers the default region; one dnsperf with\n"
        "all of --clients and --outstanding, 2 threads",
    )
    many = p.add_argument_group(
        "many-subnet mode",
        "Every query carries ECS from one of N distinct subnets (bench/geoquery.py), read by\n"
        "one dnsperf from a binary query file (-B); all servers read the same real database.",
    )
    many.add_argument(
        "--subnets",
        type=int,
        metavar="N",
        help="switch to this mode with N distinct client subnets (--family 6 or --zipf\n"
        "alone switch to it too, with 100,000; --quick: 2,000)",
    )
    many.add_argument(
        "--family", type=int, choices=(4, 6), default=4, help="IPv4 /24s or IPv6 /56s (default: 4)"
    )
    many.add_argument(
        "--zipf", action="store_true", help="20%% of the subnets get 80%% of the queries"
    )
    many.add_argument(
        "--queries",
        type=int,
        help="queries in the file; a saturated run goes through it once\n"
        "(default: 1,000,000; --quick: 50,000)",
    )
    many.add_argument("--seed", type=int, default=1, help="for drawing subnets (default: 1)")
    many.add_argument(
        "--rate",
        type=float,
        help=f"q/s of the fixed-rate run that measures CPU per query\n(default: {DEFAULT_RATE:,})",
    )
    many.add_argument(
        "--rate-duration",
        type=float,
        help="seconds of the fixed-rate run (default: 10; --quick: 2)",
    )
    many.add_argument(
        "--sample",
        type=int,
        help="subnets asked of every server before the load, answers compared\n"
        "(default: 200; --quick: 50)",
    )
    many.add_argument(
        "--geoip-database",
        type=Path,
        metavar="MMDB",
        help="the database all servers read (default: geodns's embedded DB-IP City Lite)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="2 s runs, one round: proves it works (with --subnets: 50,000 queries, 50\n"
        "sampled, 2 s at the fixed rate)",
    )
    add_common_arguments(p, DEFAULT_ZONE, DEFAULT_LOGS)
    args = p.parse_args(argv)
    args.duration_given = args.duration is not None
    if args.subnets is not None or args.family == 6 or args.zipf:
        if args.subnets is None:
            args.subnets = 2000 if args.quick else 100_000
        if args.subnets < 1:
            p.error("--subnets must be positive")
        if args.no_ecs or args.countries:
            p.error("--subnets goes with neither --no-ecs nor --countries")
    quick = args.quick
    args.queries = args.queries or (50_000 if quick else 1_000_000)
    args.rate = args.rate or float(DEFAULT_RATE)
    args.rate_duration = args.rate_duration or (2.0 if quick else 10.0)
    args.sample = args.sample if args.sample is not None else (50 if quick else 200)
    quick_defaults(args)
    if args.duration <= 0 or args.repeat < 1 or args.workers < 1:
        p.error("--duration, --repeat and --workers must be positive")
    if "geodns" not in args.servers:
        p.error("--servers must include geodns")
    args.zone, args.logs = args.zone.absolute(), args.logs.absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    return run_bench("geo bench", parse_args(argv), bench)


def bench(args: argparse.Namespace, servers: list[GeoServer]) -> int:
    needed = {"geodns": "dnsperf", "pdns": "pdns_server", "gdnsd": "gdnsd"}
    for kind in args.servers:
        if not shutil.which(needed[kind]):
            raise BenchError(
                f"{needed[kind]} not found on PATH (Debian: apt install dnsperf pdns-server "
                f"pdns-backend-geoip gdnsd)"
            )
    many = args.subnets is not None
    if many:
        if args.geoip_database is None:
            from geodns.geo.embedded import embedded_path

            args.geoip_database = Path(embedded_path())
        if not args.geoip_database.is_file():
            raise BenchError(f"{args.geoip_database}: no such GeoIP database file")
    else:
        try:
            from tests.geo_fixtures import build_test_mmdb
        except ImportError as exc:
            raise BenchError(
                f"cannot build the test GeoIP database: {exc} (pip install -e '.[test]')"
            ) from exc
    cores = pinning()
    pinned = cores.pinned
    client_cpu, server_cpu = cores.client_cpu, cores.server_cpu
    notes = []
    if not pinned:
        notes.append(NO_PINNING)

    load_clients, extra_clients = ([], []) if many else test_clients()
    if args.countries:
        wanted = {c.upper() for c in args.countries}
        load_clients = [c for c in load_clients if c.label in wanted]
        if not load_clients:
            raise BenchError(f"no test country among {sorted(wanted)}")
    origin, spec = read_service(args.zone)
    name = f"{SERVICE}.{origin}."
    machine = machine_info()
    machine["pdns"] = tool_version(["pdns_server", "--version"], r"Authoritative Server (\S+)")
    machine["gdnsd"] = tool_version(["gdnsd", "-V"], r"gdnsd version (\S+)")
    machine["git"] = git_revision()
    machine["packages"] = debian_versions(
        ["pdns-server", "pdns-backend-geoip", "gdnsd", "dnsperf", "libmaxminddb0"]
    )

    shutil.rmtree(args.logs, ignore_errors=True)
    args.logs.mkdir(parents=True)
    raw = args.logs / "dnsperf.txt"
    prep: dict = {}
    if many:
        print(
            f"drawing {args.subnets:,} IPv{args.family} subnets from {args.geoip_database} and "
            f"writing {args.queries:,} queries...",
            file=sys.stderr,
        )
        try:
            from bench.geoquery import prepare_subnets

            prep = prepare_subnets(args, name, spec)
        except ValueError as exc:
            raise BenchError(str(exc)) from exc
        notes += prep["notes"]
    else:
        args.query_file = args.logs / "geo-queries.txt"
        args.query_file.write_text(f"{name.rstrip('.')} A\n")
    with tempfile.TemporaryDirectory(prefix="geodns-geo-bench-") as tmp:
        workdir = Path(tmp)
        if many:
            mmdb = args.geoip_database.absolute()
        else:
            mmdb = build_test_mmdb(workdir / "test-city.mmdb")
        add_servers(args, servers, workdir, mmdb, origin, spec, prep, cores, notes)
        start_all(servers, origin)
        for server in servers:
            if server.name == "geodns":
                # Measured as it serves for good: with its merged ECS scopes, like gdnsd.
                server.wait_for_log("ECS scopes merged", SCOPES_TIMEOUT if many else 60)
        port53 = port53_listeners()
        if port53:
            notes.append(f"something listens on port 53 on this machine: {port53}")

        if many:
            checked = subnet_clients(prep["subnets"], args.sample, args.seed)
            checked.append(Client("no ECS", None, None))
        else:
            checked = load_clients + extra_clients
        by_distance = prep["by_distance"] if many else None
        rows, minor, explained, fatal = agree(servers, name, checked, spec, by_distance)

        results = [Result(s) for s in servers]
        load_clients, commands, rate_commands = dnsperf_commands(
            args, servers, client_cpu, load_clients
        )
        total = args.repeat * len(servers)
        if many:
            what = "through the query file once" if not args.duration_given else ""
            what = what or f"{args.duration:g} s"
            print(
                f"\nbenchmarking {len(servers)} servers x {args.repeat} round(s): saturated, "
                f"{what}; then {args.rate:,.0f} q/s for {args.rate_duration:g} s...",
                file=sys.stderr,
            )
        else:
            per_run = args.duration + SETTLE + BACKGROUND_SAMPLE
            print(
                f"\nbenchmarking {len(servers)} servers x {args.repeat} round(s) x "
                f"{args.duration:g} s, {len(commands[servers[0].label])} dnsperf at once "
                f"(about {total * per_run:.0f} s)...",
                file=sys.stderr,
            )
        # A saturated run through the whole file: dnsperf's own limit is the file, the
        # timeout allows for a server answering no faster than 1,000 q/s.
        timeout = args.duration if not many or args.duration_given else args.queries / 1000
        rate_runs: dict[str, list[dict]] = {s.label: [] for s in servers}
        for round_ in range(args.repeat):
            for result in results:
                server = result.server
                stats = measure(commands[server.label], server, timeout, raw)
                for client, part in zip(load_clients, stats.get("parts", [stats]), strict=True):
                    part["client"] = client.label
                result.runs.append(stats)
                report_run(round_, server, stats, "")
                if many:
                    stats = measure(rate_commands[server.label], server, args.rate_duration, raw)
                    rate_runs[server.label].append(stats)
                    report_run(round_, server, stats, f" at {args.rate:,.0f} q/s")
        exit_codes = stop_all(servers)

    report = {
        "machine": machine,
        "config": {
            "zone": str(args.zone),
            "service": name,
            "geoip_database": (
                str(args.geoip_database)
                if many
                else "tests/geo_fixtures.py build_test_mmdb (GeoIP2-City)"
            ),
            "load_subnets": {c.label: str(c.subnet) for c in load_clients if c.subnet},
            "ecs": not args.no_ecs,
            "duration_s": args.duration,
            "repeat": args.repeat,
            "quick": bool(args.quick),
            "clients_total": args.clients,
            "outstanding_total": args.outstanding,
            "pinning": {"dnsperf": client_cpu, "servers": server_cpu},
            "pdns_distributor_threads": PDNS_DISTRIBUTORS,
            "many_subnets": prep.get("info"),
            "rate_qps": args.rate if many else None,
            "rate_duration_s": args.rate_duration if many else None,
        },
        "server_commands": {s.label: shlex.join(s.argv) for s in servers},
        "dnsperf_commands": {k: [shlex.join(a) for a in v] for k, v in commands.items()},
        "dnsperf_rate_commands": {k: [shlex.join(a) for a in v] for k, v in rate_commands.items()},
        "verification": rows,
        "answer_differences_minor": minor,
        "answer_differences_explained": explained,
        "answer_differences_unexplained": fatal if many else [],
        "results": [
            {
                **r.as_json(),
                "server": r.server.label,
                "threads": r.server.threads,
                **rate_summary(r, rate_runs[r.server.label] if many else []),
            }
            for r in results
        ],
        "notes": notes,
        "logs": log_findings(servers),
        "exit_codes_on_sigterm": exit_codes,
    }
    report["ratios"] = ratios(results)
    if many:
        add_rate_figures(report)
    disturbed = disturbed_runs(results, rate_runs, many)
    if disturbed:
        notes.append(
            "the machine was busy with other work just before some runs (both cores, "
            f"averaged): {', '.join(disturbed)}; those figures are disturbed"
        )
    print_report(report)
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
