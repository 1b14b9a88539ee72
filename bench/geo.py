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
the processes' (qps, counts) and their latencies combined (bench/run.py merge_dnsperf).

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
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.geoagree import agree  # noqa: E402
from bench.geoload import dnsperf_commands, measure, report_run  # noqa: E402
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
    TITLES,
    Client,
    read_service,
    subnet_clients,
    test_clients,
)
from bench.harness import (  # noqa: E402
    BACKGROUND_SAMPLE,
    CLIENT_CPU,
    DEFAULT_CLIENTS,
    DEFAULT_OUTSTANDING,
    NO_PINNING,
    SERVER_CPU,
    SETTLE,
    BenchError,
    Result,
    add_common_arguments,
    git_revision,
    machine_info,
    pinning,
    print_logs,
    quick_defaults,
    result_cells,
    run_bench,
    start_all,
    stop_all,
    tool_version,
    write_json,
)

DEFAULT_ZONE = ROOT / "zones" / "example.com.yaml"
DEFAULT_LOGS = ROOT / "bench" / "results" / "logs" / "geo"


BACKGROUND_WARN = 15.0  # % busy (both cores together) counted as a disturbed run
SCOPES_TIMEOUT = 600  # seconds for geodns to merge a real database's ECS scopes
# The fixed-rate run: a rate all three hold with a margin. One worker of geodns answers
# about 80,000 uncached q/s on this 2-core machine, PowerDNS about 50,000, gdnsd about
# 170,000 (5,000 while geodns held only 7,600-15,000). At low rates every server's CPU per
# query is mostly the wakeup per datagram (docs/performance-geo.md); --rate 5000 shows it.
DEFAULT_RATE = 30_000
RATE_HELD = 0.97  # a fixed-rate run below this share of --rate did not hold the rate


# --- main ------------------------------------------------------------------------------


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
        by = {r["server"]: r for r in report["results"]}
        for pair, ratio in report["ratios"].items():
            g, o = by["geodns"], by[pair.split("/", 1)[1]]
            ratio["cpu_per_query_at_rate"] = round(
                g["rate_median"]["server_cpu_us_per_query"]
                / o["rate_median"]["server_cpu_us_per_query"],
                3,
            )
            ratio["rss"] = round(g["rss_peak_mb"] / o["rss_peak_mb"], 3)
        report["targets"] = targets(report)
    disturbed = [
        f"{r.server.label} round {i + 1}{what}: {run['background_busy_pct']:.0f}%"
        for r in results
        for runs, what in ((r.runs, ""), (rate_runs[r.server.label] if many else [], " rate"))
        for i, run in enumerate(runs)
        if run["background_busy_pct"] > BACKGROUND_WARN
    ]
    if disturbed:
        notes.append(
            "the machine was busy with other work just before some runs (both cores, "
            f"averaged): {', '.join(disturbed)}; those figures are disturbed"
        )
    print_report(report)
    write_json(args.json, report)
    return 0


def rate_summary(result: Result, runs: list[dict]) -> dict:
    """The fixed-rate runs of one server and their median (by CPU per query), and the
    peak RSS over all of its runs."""
    if not runs:
        return {}
    every = result.runs + runs
    return {
        "rate_runs": runs,
        "rate_median": sorted(runs, key=lambda r: r["server_cpu_us_per_query"])[
            (len(runs) - 1) // 2
        ],
        "rss_peak_mb": max(r["rss_peak_mb"] for r in every),
        "rss_peak_group_mb": max(r["rss_peak_group_mb"] for r in every),
    }


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    by = {r.server.kind: r.median() for r in results}
    out = {}
    for other in ("pdns", "gdnsd"):
        if "geodns" in by and other in by:
            g, o = by["geodns"], by[other]
            out[f"geodns/{TITLES[other]}"] = {
                "qps": round(g["qps"] / o["qps"], 3),
                "cpu_per_query": round(
                    g["server_cpu_us_per_query"] / o["server_cpu_us_per_query"], 3
                ),
            }
    return out


def print_rate_table(report: dict) -> None:
    """Many-subnet mode: the fixed-rate runs (CPU per query) and each server's peak RSS."""
    c = report["config"]
    print()
    print(
        f"at a fixed rate of {c['rate_qps']:,.0f} q/s for {c['rate_duration_s']:g} s "
        "(median by CPU per query); peak RSS over all runs:"
    )
    header = (
        f"{'server':<9} {'qps':>9} {'lost':>6} {'cpu1%':>6} {'us/q usr+sys':>13} "
        f"{'us/q':>7} {'us/q range':>13} {'RSS MB':>7} {'group MB':>9} {'bg%':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        med = r["rate_median"]
        us = [run["server_cpu_us_per_query"] for run in r["rate_runs"]]
        spread = f"{min(us):.1f}-{max(us):.1f}" if len(us) > 1 else ""
        bg = max(run["background_busy_pct"] for run in r["rate_runs"] + r["runs"])
        print(
            f"{r['server']:<9} {med['qps']:>9,.0f} {med.get('lost', 0):>6} "
            f"{med['core_busy_pct'].get(SERVER_CPU, 0):>6.0f} "
            f"{med['server_user_us_per_query']:>6.1f}+{med['server_sys_us_per_query']:<6.1f} "
            f"{med['server_cpu_us_per_query']:>7.1f} {spread:>13} {r['rss_peak_mb']:>7.0f} "
            f"{r['rss_peak_group_mb']:>9.0f} {bg:>5.0f}"
        )
    for r in report["results"]:
        short = [run["qps"] for run in r["rate_runs"] if run["qps"] < RATE_HELD * c["rate_qps"]]
        if short:
            print(
                f"note: {r['server']} did not hold {c['rate_qps']:,.0f} q/s "
                f"({', '.join(f'{q:,.0f}' for q in short)} q/s): its CPU per query there is "
                "that of a saturated server; choose a lower --rate"
            )
    print(
        "RSS MB: the largest of the server's processes (geodns: its answering process), "
        "sampled every 0.2 s; group MB: all its processes; bg%: the most the machine was "
        "busy just before any of its runs (both cores averaged)"
    )


# Issue 13's targets for the many-subnet run, one worker: what `targets` checks.
TARGET_VS_PDNS = 1.0  # qps, at least PowerDNS's GeoIP backend's
STRETCH_VS_GDNSD = 0.5  # qps, the stretch: half of gdnsd's
TARGET_CPU_US = 20.0  # server CPU per uncached query at the fixed rate, under
TARGET_RSS_MB = 150.0  # peak RSS of the answering process, under


def targets(report: dict) -> list[dict]:
    """Each of the issue's targets that this run can check: what it asks, what the run
    measured (the medians shown in the tables), and whether it is met."""
    by = {r["server"]: r for r in report["results"]}
    geodns = by.get("geodns")
    if geodns is None:
        return []
    out = []

    def check(what: str, measured: str, met: bool) -> None:
        out.append({"target": what, "measured": measured, "met": met})

    for other, floor, what in (
        ("pdns", TARGET_VS_PDNS, "qps at least 1.0x PowerDNS"),
        ("gdnsd", STRETCH_VS_GDNSD, "qps at least 0.5x gdnsd (stretch)"),
    ):
        ratio = report["ratios"].get(f"geodns/{TITLES[other]}")
        if ratio is not None:
            check(what, f"{ratio['qps']:.2f}x", ratio["qps"] >= floor)
    lost = sum(run.get("lost", 0) for run in geodns["runs"])
    check("0 lost (saturated runs)", f"{lost:,}", lost == 0)
    rate = geodns.get("rate_median")
    if rate:
        us = rate["server_cpu_us_per_query"]
        qps = report["config"]["rate_qps"]
        check(f"CPU per query at {qps:,.0f} q/s under 20 us", f"{us:.1f} us", us < TARGET_CPU_US)
        rss = geodns["rss_peak_mb"]
        check("peak RSS under 150 MB", f"{rss:.0f} MB", rss < TARGET_RSS_MB)
    return out


def print_report(report: dict) -> None:
    m, c = report["machine"], report["config"]
    pkgs = m["packages"]
    print()
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; Python "
        f"{m['python']}; geodns {m['geodns']} at {m['git']}, PowerDNS {pkgs.get('pdns-server')} "
        f"(geoip backend {pkgs.get('pdns-backend-geoip')}), gdnsd {pkgs.get('gdnsd')}, "
        f"dnsperf {m['dnsperf']}, libmaxminddb {pkgs.get('libmaxminddb0')}"
    )
    many = c.get("many_subnets")
    if many:
        what = (
            f"A {c['service']}, {many['queries']:,} queries with ECS from {many['subnets']:,} "
            f"distinct IPv{many['family']} /{many['prefix']}s ({many['distribution']}; "
            f"{many['distinct_subnets_asked']:,} asked; seed {many['seed']}; "
            f"{many['countries']} countries; per continent "
            f"{', '.join(f'{k} {v:,}' for k, v in many['subnets_per_continent'].items())}) "
            f"in {many['file']}, one dnsperf -B; database {c['geoip_database']}"
        )
    elif c["ecs"]:
        what = (
            f"A {c['service']} with ECS from {len(c['load_subnets'])} subnets "
            f"({', '.join(f'{k} {v}' for k, v in c['load_subnets'].items())}), one dnsperf "
            "each, all at once"
        )
    else:
        what = f"A {c['service']} without EDNS (no ECS: the client is 127.0.0.1), one dnsperf"
    if many:
        per_run = (
            "saturated runs through the file once"
            if "-n 1" in next(iter(report["dnsperf_commands"].values()))[0]
            else f"saturated runs of {c['duration_s']:g} s"
        )
        per_run += f", then {c['rate_qps']:,.0f} q/s for {c['rate_duration_s']:g} s"
    else:
        per_run = f"{c['duration_s']:g} s per run"
    print(
        f"load: {what}; {per_run}, {c['repeat']} round(s), servers "
        "interleaved" + ("; the median-qps run of each is shown" if c["repeat"] > 1 else "")
    )
    print("server commands:")
    for label, cmd in report["server_commands"].items():
        print(f"  {label}: {cmd}")
    sets = report["dnsperf_commands"]
    several = any(len(cmds) > 1 for cmds in sets.values())
    print(
        "dnsperf commands"
        + (" (the first of each set; the others differ in -E only):" if several else ":")
    )
    for label, cmds in sets.items():
        print(f"  {label}: {cmds[0]}")
    if report.get("dnsperf_rate_commands"):
        print("dnsperf commands at the fixed rate:")
        for label, cmds in report["dnsperf_rate_commands"].items():
            print(f"  {label}: {cmds[0]}")
    print()
    header = (
        f"{'server':<9} {'threads':<27} {'qps':>9} {'qps range':>17} {'avg ms':>7} "
        f"{'max ms':>7} {'lost':>6} {'cpu0%':>6} {'cpu1%':>6} {'us/q usr+sys':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        med, spread, busy, us_q = result_cells(r)
        print(
            f"{r['server']:<9} {r['threads']:<27} {med['qps']:>9,.0f} {spread:>17} "
            f"{med['avg_latency_s'] * 1000:>7.3f} {med['max_latency_s'] * 1000:>7.2f} "
            f"{med.get('lost', 0):>6} {busy.get(CLIENT_CPU, 0):>6.0f} "
            f"{busy.get(SERVER_CPU, 0):>6.0f} {us_q:>13}"
        )
    if many:
        print_rate_table(report)
    print()
    for pair, ratio in report["ratios"].items():
        line = f"{pair}: qps {ratio['qps']:.2f}, CPU per query {ratio['cpu_per_query']:.2f}"
        if "cpu_per_query_at_rate" in ratio:
            line += (
                f" (at {c['rate_qps']:,.0f} q/s: {ratio['cpu_per_query_at_rate']:.2f}), "
                f"peak RSS {ratio['rss']:.2f}"
            )
        print(line)
    if report.get("targets"):
        print("targets (issue 13, one worker):")
        for t in report["targets"]:
            print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {t['measured']}")
    print(
        f"cpu0%/cpu1%: busy share of core {CLIENT_CPU} (dnsperf) and core {SERVER_CPU} "
        "(server), softirq included; us/q: the server's CPU time (user + system) per "
        "completed query"
    )
    for r in report["results"]:
        med = r["median"]
        busy = med["core_busy_pct"]
        if med["wall_s"] > med["run_time_s"] + 1:
            print(
                f"note: {r['server']}: dnsperf waited {med['wall_s'] - med['run_time_s']:.1f} s "
                "after the run for lost queries to time out: its cpu0%/cpu1% are diluted by "
                "that idle time (us/q is not)"
            )
        elif r["pinning"] != "none" and busy.get(CLIENT_CPU, 0) >= 95 > busy.get(SERVER_CPU, 0):
            print(
                f"note: {r['server']}: dnsperf's core was saturated and the server's was not: "
                "its qps is a lower bound set by the load generator; compare us/q"
            )
    for r in report["results"]:
        lost = sum(run.get("lost", 0) for run in r["runs"])
        drops = sum(run["server_socket_drops"] for run in r["runs"])
        if lost or drops:
            print(
                f"note: {r['server']}: {lost} queries lost in all runs; the kernel dropped "
                f"{drops} queries meanwhile at the server's UDP socket(s) for a full receive "
                "buffer (/proc/net/udp drops)"
            )
    for note in report["notes"]:
        print(f"note: {note}")
    for d in report.get("answer_differences_explained", []):
        print(f"note: answers differ, explained: {d}")
    for d in report.get("answer_differences_unexplained", []):
        print(f"note: answers differ, unexplained (within the allowed share): {d}")
    for d in report["answer_differences_minor"]:
        print(f"note: answers differ beyond the addresses: {d}")
    for label, code in report["exit_codes_on_sigterm"].items():
        # PowerDNS and gdnsd clean up, then die by the signal again (exit status -15).
        if code != 0 and not (label != "geodns" and code == -signal.SIGTERM):
            print(f"WARNING: {label} exited with {code} when stopped with SIGTERM")
    print_logs(report["logs"])


if __name__ == "__main__":
    sys.exit(main())
