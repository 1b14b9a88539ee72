#!/usr/bin/env python3
"""What a reload costs the queries answered meanwhile: lost queries and latency.

Generates a zone of 10,000 A records plus the example zone's service, serves it with
`geodns serve --workers 1` pinned to core 1, and drives it with dnsperf pinned to core 0
at a fixed rate (20,000 q/s) for a while, once without reloads and once with reloads
triggered during the run (SIGHUP and an edit of the zone file, which the watcher sees).
dnsperf's -v line per query gives every latency, so the report has p50/p99/p99.9/max
for the whole run and for the queries sent while a reload ran, and dnsperf's lost.
The reload's duration is the one the server logs ("... in 0.42 s"), else the time from
the trigger until its "config version N" log line.

    python bench/reload.py                        # 15 s runs, 3 reloads
    python bench/reload.py --records 10000 --rate 20000 --duration 15 --reloads 3
    python bench/reload.py --json bench/results/reload.json

Needs dnsperf and taskset. Logs and dnsperf's raw output go to bench/results/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    BenchError,
    Server,
    free_port,
    group_memory,
    machine_info,
    parse_dnsperf,
    pin,
    run_bench,
    socket_drops,
)
from bench.run import DEFAULT_LOGS, DEFAULT_ZONE  # noqa: E402

ORIGIN = "example.com"
SERVICE = "inference.example.com"
_RELOADED = re.compile(r"reload \(([^)]*)\): config version (\d+).*?(?: in ([\d.]+) s)?$")
_SPOOL = "/dev/shm" if os.path.isdir("/dev/shm") else None
_LATENCY = re.compile(r"^> \S+ \S+ \S+ ([\d.]+)$")


def write_zone(records: int, directory: Path) -> Path:
    """The example zone with `records` more A records h0 .. h<records-1>."""
    base = DEFAULT_ZONE.read_text()
    lines = [f"  h{i}: {{A: 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}}}" for i in range(records)]
    assert "\nrecords:\n" in base
    text = base.replace("\nrecords:\n", "\nrecords:\n" + "\n".join(lines) + "\n", 1)
    directory.mkdir(parents=True, exist_ok=True)
    zone = directory / f"{ORIGIN}.yaml"
    zone.write_text(text)
    return zone


def write_queries(records: int, path: Path, count: int = 10000) -> Path:
    """Static names of the big zone (most), the service name, and a few apex types."""
    rng = random.Random(13)
    out = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.7:
            out.append(f"h{rng.randrange(records)}.{ORIGIN} A")
        elif pick < 0.9:
            out.append(f"{SERVICE} A")
        else:
            out.append(rng.choice([f"{ORIGIN} SOA", f"www.{ORIGIN} A", f"nosuch.{ORIGIN} A"]))
    path.write_text("\n".join(out) + "\n")
    return path


def edit_zone(zone: Path, n: int) -> None:
    """A real change (h0's address), written whole as an editor does, for the watcher."""
    text = zone.read_text()
    text = re.sub(r"\n  h0: \{A: [0-9.]+\}\n", f"\n  h0: {{A: 10.255.{n % 256}.1}}\n", text)
    tmp = zone.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, zone)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(latencies: list[float]) -> dict:
    ms = [x * 1000 for x in latencies]
    return {
        "queries": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "p999_ms": round(percentile(ms, 0.999), 3),
        "max_ms": round(max(ms, default=0.0), 3),
    }


def reload_lines(server: Server) -> list[tuple[str, int, float | None]]:
    out = []
    for line in server.log_lines():
        m = _RELOADED.search(line)
        if m:
            out.append((m.group(1), int(m.group(2)), float(m.group(3)) if m.group(3) else None))
    return out


def one_run(
    args: argparse.Namespace, server: Server, zone: Path, queries: Path, reloads: int, raw: Path
) -> dict:
    """dnsperf for args.duration seconds; `reloads` triggered evenly inside the run."""
    argv = pin(
        CLIENT_CPU if args.pin else None,
        [
            "dnsperf",
            *("-s", HOST, "-p", str(server.port), "-d", str(queries)),
            *("-l", f"{args.duration:g}", "-Q", str(args.rate), "-q", str(args.outstanding)),
            # -v writes a line per reply: a pause in those writes must not drop replies
            # at dnsperf's own socket (they were counted lost: 600-2,000 a run at 20,000
            # q/s with the default buffer, none of them at the server's), so 4 MB buffers.
            *("-c", "1", "-T", "1", "-v", "-b", "4096"),
        ],
    )
    # dnsperf's -v output (11 MB a run) goes to memory first, then to `raw`: written to
    # disk as it came, it stalled dnsperf itself for 0.4-0.5 s about 2.5 s into some runs
    # (the kernel throttling a writer of dirty pages), which dnsperf counts as latency.
    spool = Path(tempfile.mkstemp(prefix="geodns-reload-", dir=_SPOOL)[1])
    out = spool.open("w")
    drops = socket_drops(server.port)
    perf = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    start = time.monotonic()
    windows: list[tuple[float, float]] = []  # reload windows, seconds since start
    durations: list[dict] = []
    try:
        for i in range(reloads):
            at = args.duration * (i + 1) / (reloads + 1)
            time.sleep(max(0.0, start + at - time.monotonic()))
            before = len(reload_lines(server))
            trigger = time.monotonic()
            if i % 2 == 0:
                assert server.proc is not None
                os.kill(server.proc.pid, signal.SIGHUP)
                how = "SIGHUP"
            else:
                edit_zone(zone, i)
                how = "file change"
            deadline = trigger + 30
            while len(reload_lines(server)) <= before:
                if time.monotonic() > deadline:
                    raise BenchError(f"no reload logged after {how}\n{server.log_tail()}")
                time.sleep(0.01)
            seen = time.monotonic()
            trigger_name, version, logged = reload_lines(server)[-1]
            windows.append((trigger - start, seen - start))
            durations.append(
                {
                    "trigger": trigger_name,
                    "config_version": version,
                    "logged_s": logged,
                    "trigger_to_log_s": round(seen - trigger, 3),
                }
            )
        perf.wait(args.duration + 30)
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.wait()
        out.close()
        shutil.move(spool, raw)
    text = raw.read_text(errors="replace")
    stats = parse_dnsperf(text)
    if "completed" not in stats:
        raise BenchError(f"dnsperf failed:\n{text[-2000:]}")
    latencies = [float(m.group(1)) for m in map(_LATENCY.match, text.splitlines()) if m]
    # dnsperf prints a reply's line when it arrives: with a steady send rate, the n-th
    # reply line was answered at about n / rate seconds into the run, which is near enough
    # to tell the queries around a reload from the rest.
    during: list[float] = []
    for n, lat in enumerate(latencies):
        sent = n / args.rate
        if any(a - 0.05 <= sent <= b + 0.05 for a, b in windows):
            during.append(lat)
    return {
        "reloads": durations,
        "sent": stats.get("sent"),
        "completed": stats.get("completed"),
        "lost": stats.get("lost"),
        # Of those, the datagrams the kernel dropped at the server's socket, for a full
        # receive buffer: what the server failed to read in time.
        "dropped_at_server": socket_drops(server.port) - drops,
        "qps": stats.get("qps"),
        "latency": latency_summary(latencies),
        "latency_during_reloads": latency_summary(during) if windows else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10000, help="A records in the zone")
    p.add_argument("--rate", type=int, default=20000, help="dnsperf -Q: queries per second")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per dnsperf run")
    p.add_argument("--reloads", type=int, default=3, help="reloads during the second run")
    p.add_argument(
        "--outstanding",
        type=int,
        default=50000,
        help="dnsperf -q: queries in flight; a stall shows as lost when the socket overflows",
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    p.add_argument("--logs", type=Path, default=DEFAULT_LOGS / "reload")
    p.add_argument("--json", type=Path, help="write the results here too")
    return p.parse_args(argv)


def bench(args: argparse.Namespace, servers: list[Server]) -> int:
    if not shutil.which("dnsperf"):
        raise BenchError("dnsperf not found on PATH (Debian: apt install dnsperf)")
    args.pin = args.pin and shutil.which("taskset") is not None
    args.pin = args.pin and {CLIENT_CPU, SERVER_CPU} <= os.sched_getaffinity(0)
    args.logs.mkdir(parents=True, exist_ok=True)
    zones = args.logs / "zones"
    shutil.rmtree(zones, ignore_errors=True)
    zone = write_zone(args.records, zones)
    queries = write_queries(args.records, args.logs / "queries.txt")
    port = free_port(set())
    argv = [sys.executable, "-m", "geodns", "--log-level", "info", "serve", "--http", "off"]
    argv += ["--scope-cache", "off", "--rrl-rate", "0", "--workers", "1"]
    argv += ["--listen", f"{HOST}:{port}", "--zones", str(zones), "--watch-interval", "0.5"]
    server = Server(
        "geodns",
        1,
        port,
        pin(SERVER_CPU if args.pin else None, argv),
        args.logs / "geodns.log",
        f"core {SERVER_CPU}" if args.pin else "none",
    )
    servers.append(server)
    server.start()
    server.wait_ready(ORIGIN)
    # The first queries pay for warming up (the GeoIP database, the answer caches).
    warm = argparse.Namespace(**{**vars(args), "duration": 2.0})
    one_run(warm, server, zone, queries, 0, args.logs / "dnsperf-warm-up.txt")
    results = {
        "machine": machine_info(),
        # Other programs on the two cores show in every figure: say how busy it was.
        "load_average_at_start": os.getloadavg()[0],
        "command": " ".join(["python", "bench/reload.py", *sys.argv[1:]]),
        "records": args.records,
        "rate": args.rate,
        "duration_s": args.duration,
        "outstanding": args.outstanding,
        "pinned": args.pin,
        "without_reloads": one_run(args, server, zone, queries, 0, args.logs / "dnsperf-0.txt"),
    }
    time.sleep(1.0)
    results["with_reloads"] = one_run(
        args, server, zone, queries, args.reloads, args.logs / "dnsperf-1.txt"
    )
    if not server.alive():
        raise BenchError(f"geodns exited during the run\n{server.log_tail()}")
    assert server.proc is not None
    # After the reloads: the DNS worker and its twin (geodns-twin) each hold a configuration.
    results["memory_after"] = group_memory(server.proc.pid)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_report(results: dict) -> None:
    m = results["machine"]
    print(f"machine: {m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']}", end="")
    print(f", dnsperf {m['dnsperf']}; pinned: {results['pinned']}", end="")
    print(f"; load average at start {results['load_average_at_start']:.2f}")
    print(
        f"zone: {results['records']} A records + the service; {results['rate']} q/s for "
        f"{results['duration_s']:g} s, dnsperf -q {results['outstanding']}"
    )
    for key in ("without_reloads", "with_reloads"):
        r = results[key]
        lat = r["latency"]
        print(
            f"{key.replace('_', ' ')}: sent {r['sent']}, lost {r['lost']} "
            f"({r['dropped_at_server']} dropped at the server's socket), "
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, p99.9 {lat['p999_ms']} ms, "
            f"max {lat['max_ms']} ms"
        )
        for d in r["reloads"]:
            logged = f"{d['logged_s']} s" if d["logged_s"] is not None else "not logged"
            print(
                f"  reload ({d['trigger']}) -> config version {d['config_version']}: "
                f"took {logged}, seen in the log {d['trigger_to_log_s']} s after the trigger"
            )
        during = r["latency_during_reloads"]
        if during:
            print(
                f"  queries around the reloads ({during['queries']}): p99 {during['p99_ms']} ms,"
                f" p99.9 {during['p999_ms']} ms, max {during['max_ms']} ms"
            )
    base = results["without_reloads"]["latency"]["p99_ms"]
    during = results["with_reloads"]["latency_during_reloads"]
    if during and base:
        print(
            f"p99 around the reloads against p99 without: {during['p99_ms'] / base:.2f}x, "
            f"whole runs: {results['with_reloads']['latency']['p99_ms'] / base:.2f}x"
        )
    for proc in results.get("memory_after", []):
        print(
            f"memory after the reloads: {proc['name']} (pid {proc['pid']}): "
            f"RSS {proc['rss_mb']} MB, PSS {proc['pss_mb']} MB"
        )


def main(argv: list[str] | None = None) -> int:
    return run_bench("reload", parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
