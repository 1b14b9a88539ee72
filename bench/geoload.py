"""The load bench/geo.py puts on each server and what it measures: the dnsperf commands
(one per country subnet, one plain, or one reading a many-subnet query file, saturated or
at a fixed rate), and each run with the machine's load just before it, the kernel's drops
at the server's socket and the peak RSS of the server's processes."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

from bench.geoservers import GeoServer
from bench.geoservice import Client
from bench.harness import (
    HOST,
    SETTLE,
    background_busy,
    dnsperf_argv,
    group_cpu,
    pin,
    run_dnsperf,
    socket_drops,
)

RSS_SAMPLE = 0.2  # seconds between samples of the servers' resident memory


DNSPERF_THREADS = 2  # many-subnet mode: one dnsperf, threads as the static benchmark


# The static benchmark's -c 10 -q 500 -T 2 (DEFAULT_CLIENTS, DEFAULT_OUTSTANDING) is shared out
# among the concurrent dnsperf processes (one per country): about the same queries in flight
# in all and the same single load-generator core.
def geo_dnsperf_argvs(
    args: argparse.Namespace, port: int, cpu: int | None, clients: list[Client]
) -> list[list[str]]:
    """One dnsperf per client subnet, each with its share of the clients and queries in
    flight, one thread each (the processes already share the load generator's core)."""
    n = len(clients)
    share = argparse.Namespace(
        queries=args.query_file,
        duration=args.duration,
        clients=max(1, round(args.clients / n)),
        outstanding=max(1, args.outstanding // n),
        threads=1,
    )
    return [[*dnsperf_argv(share, port, cpu), "-E", c.ecs_option] for c in clients]


def subnet_dnsperf_argv(
    args: argparse.Namespace, port: int, cpu: int | None, rate: float | None = None
) -> list[str]:
    """One dnsperf reading the -B file. Saturated: through the file once (-n 1) unless
    --duration was given; at a fixed rate: -Q for --rate-duration seconds."""
    queries = args.query_file if rate is None else args.rate_query_file
    argv = ["dnsperf", "-B", "-d", str(queries), "-s", HOST, "-p", str(port)]
    argv += ["-c", str(args.clients), "-q", str(args.outstanding), "-T", str(DNSPERF_THREADS)]
    if rate is not None:
        argv += ["-Q", f"{rate:g}", "-l", f"{args.rate_duration:g}"]
    elif args.duration_given:
        argv += ["-l", f"{args.duration:g}"]
    else:
        argv += ["-n", "1"]
    return pin(cpu, argv)


class RSSSampler:
    """Peak resident set size of a server's processes while a run goes on: VmRSS of each
    process in its process group, sampled every RSS_SAMPLE seconds from /proc."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak_process_kb = 0  # the largest single process (geodns's answering one)
        self.peak_group_kb = 0  # all of the group's processes together
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RSSSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE):
            self.sample()

    def sample(self) -> None:
        sizes = [kb for _pid, kb in group_rss(self.pgid)]
        if sizes:
            self.peak_process_kb = max(self.peak_process_kb, max(sizes))
            self.peak_group_kb = max(self.peak_group_kb, sum(sizes))


def group_rss(pgid: int) -> list[tuple[int, int]]:
    """(pid, VmRSS in kB) of every process in the process group."""
    out = []
    for pid in group_cpu(pgid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append((pid, int(line.split()[1])))
    return out


def measure(argvs: list[list[str]], server: GeoServer, duration: float, raw: Path) -> dict:
    """One dnsperf run (or set of them) against `server`, with the machine's load just
    before, the kernel's drops at the server's socket and the server's peak RSS."""
    time.sleep(SETTLE)
    background = background_busy()
    started, drops = time.monotonic(), socket_drops(server.port)
    assert server.proc is not None
    with RSSSampler(server.proc.pid) as rss:
        stats = run_dnsperf(argvs, server, duration, raw)
    stats["background_busy_pct"] = background
    stats["server_socket_drops"] = socket_drops(server.port) - drops
    # dnsperf waits out its timeout (5 s) for queries lost near the end of the
    # run: cpu0%/cpu1% are then shares of a longer span than the run.
    stats["wall_s"] = round(time.monotonic() - started, 2)
    stats["rss_peak_mb"] = round(rss.peak_process_kb / 1024, 1)
    stats["rss_peak_group_mb"] = round(rss.peak_group_kb / 1024, 1)
    return stats


def report_run(round_: int, server: GeoServer, stats: dict, what: str) -> None:
    background = stats["background_busy_pct"]
    print(
        f"  round {round_ + 1}: {server.label}{what}: {stats['qps']:,.0f} qps, "
        f"lost {stats.get('lost', 0)} ({stats['server_socket_drops']} dropped by "
        "the kernel at the server's socket, receive buffer full), "
        f"{stats['server_cpu_us_per_query']:.1f} us/query, RSS {stats['rss_peak_mb']:.0f} MB"
        + (f" (machine {background:.0f}% busy before)" if background > 5 else ""),
        file=sys.stderr,
    )


def dnsperf_commands(
    args: argparse.Namespace,
    servers: list[GeoServer],
    client_cpu: int | None,
    load_clients: list[Client],
) -> tuple[list[Client], dict[str, list[list[str]]], dict[str, list[list[str]]]]:
    """The dnsperf commands of each server's runs: (the clients each command of a set
    stands for, {label: saturated commands}, {label: fixed-rate commands, many-subnet
    mode only})."""
    many = args.subnets is not None
    rate_commands: dict[str, list[list[str]]] = {}
    if many:
        load_clients = [Client("many", None, None)]
        commands = {s.label: [subnet_dnsperf_argv(args, s.port, client_cpu)] for s in servers}
        rate_commands = {
            s.label: [subnet_dnsperf_argv(args, s.port, client_cpu, args.rate)] for s in servers
        }
    elif args.no_ecs:
        plain = argparse.Namespace(
            queries=args.query_file,
            duration=args.duration,
            clients=args.clients,
            outstanding=args.outstanding,
            threads=2,
        )
        load_clients = [Client("no ECS", None, None)]
        commands = {s.label: [dnsperf_argv(plain, s.port, client_cpu)] for s in servers}
    else:
        commands = {
            s.label: geo_dnsperf_argvs(args, s.port, client_cpu, load_clients) for s in servers
        }
    return load_clients, commands, rate_commands
