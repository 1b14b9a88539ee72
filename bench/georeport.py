"""bench/geo.py's report: the fixed-rate summaries, the ratios of geodns to the others,
issue 13's targets for the many-subnet run, the runs disturbed by other work, and the
text printed at the end (the JSON is the same report dict)."""

from __future__ import annotations

import signal

from bench.geoservice import TITLES
from bench.harness import CLIENT_CPU, SERVER_CPU, Result, load_bound, print_logs, result_cells

BACKGROUND_WARN = 15.0  # % busy (both cores together) counted as a disturbed run
RATE_HELD = 0.97  # a fixed-rate run below this share of --rate did not hold the rate


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
        print(
            "targets (issue 13, one worker)"
            + (
                ": --quick runs are too short and cold to measure them, only to show they work"
                if report["config"].get("quick")
                else ":"
            )
        )
        for t in report["targets"]:
            print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {t['measured']}")
    print(
        f"cpu0%/cpu1%: busy share of core {CLIENT_CPU} (dnsperf) and core {SERVER_CPU} "
        "(server), softirq included; us/q: the server's CPU time (user + system) per "
        "completed query"
    )
    for r in report["results"]:
        med = r["median"]
        if med["wall_s"] > med["run_time_s"] + 1:
            print(
                f"note: {r['server']}: dnsperf waited {med['wall_s'] - med['run_time_s']:.1f} s "
                "after the run for lost queries to time out: its cpu0%/cpu1% are diluted by "
                "that idle time (us/q is not)"
            )
        elif load_bound(r):
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


def add_rate_figures(report: dict) -> None:
    """Many-subnet mode: geodns's ratios to the others at the fixed rate (CPU per query)
    and of peak RSS, and the targets."""
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


def disturbed_runs(
    results: list[Result], rate_runs: dict[str, list[dict]], many: bool
) -> list[str]:
    """The runs the machine was busy with other work just before (BACKGROUND_WARN)."""
    return [
        f"{r.server.label} round {i + 1}{what}: {run['background_busy_pct']:.0f}%"
        for r in results
        for runs, what in ((r.runs, ""), (rate_runs[r.server.label] if many else [], " rate"))
        for i, run in enumerate(runs)
        if run["background_busy_pct"] > BACKGROUND_WARN
    ]
