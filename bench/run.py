#!/usr/bin/env python3
"""Benchmark geodns against NSD with dnsperf, over loopback on this machine.

One run exports the example zone with `geodns export`, serves it with NSD (the
reference) and with geodns, checks that both give the same answers, and drives
each in turn with dnsperf and the same query file. Servers run on one core and
dnsperf on the other, so that the load generator does not steal the server's
CPU. geodns with more than one worker cannot be confined to one core: its
figures show scaling only roughly.

    python bench/run.py                      # 10 s runs, geodns with 1 and 2 workers
    python bench/run.py --quick              # 2 s runs, 1 worker, one round (for CI)
    python bench/run.py --json bench/results/bench.json

Needs nsd, dnsperf and taskset (Debian: apt install nsd dnsperf util-linux).
Logs, the generated nsd.conf, the exported zone and dnsperf's raw output go to
bench/results/logs/. Exits 1 if a server fails to start or dnsperf fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZONE = ROOT / "zones" / "example.com.yaml"
DEFAULT_QUERIES = ROOT / "bench" / "queries.txt"
DEFAULT_LOGS = ROOT / "bench" / "results" / "logs"

HOST = "127.0.0.1"
CLIENT_CPU = 0  # dnsperf
SERVER_CPU = 1  # NSD, and geodns with one worker
START_TIMEOUT = 20.0  # seconds for a server to answer after it is started
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
SETTLE = 0.5  # seconds of quiet between dnsperf runs

# dnsperf flags. Tried against NSD (5 s runs, 5 rounds, on a 2-core VM): -T 1 and -T 2,
# -c 4/5/10/20, -q 100/200/500/1000. -T 2 beat -T 1 every time, and -c 10 -q 500 -T 2
# gave NSD its best median (112k and 137k qps in two sweeps; -c 10 -q 100 -T 2: 120k
# and 105k; the best -T 1 setting about 100k). Even so dnsperf's core, not NSD's, is the
# one at 100%: over loopback the sending core also runs the receive path into the
# server's socket. More outstanding queries let NSD batch more per recvmmsg. Several
# clients (source ports) are needed anyway, for SO_REUSEPORT to spread geodns workers.
DEFAULT_CLIENTS = 10
DEFAULT_OUTSTANDING = 500
DEFAULT_THREADS = 2


class BenchError(Exception):
    """A server did not start, dnsperf failed, or a tool is missing: exit 1."""


# --- machine -------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def tool_version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1).strip() if match else "unknown"


def machine_info() -> dict:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nsd": tool_version(["nsd", "-v"], r"NSD version (\S+)"),
        "dnsperf": tool_version(["dnsperf", "-h"], r"Version (\S+)"),
        "geodns": tool_version([sys.executable, "-m", "geodns", "--version"], r"geodns (\S+)"),
    }


def core_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    times = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]  # idle + iowait
                times[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return times


def core_busy(before: dict, after: dict) -> dict[int, float]:
    busy = {}
    for cpu, (b1, t1) in after.items():
        b0, t0 = before.get(cpu, (0, 0))
        busy[cpu] = round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else 0.0
    return busy


def group_cpu(pgid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of every process in a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        if int(rest[2]) == pgid:
            out[int(stat.parent.name)] = (int(rest[11]) / tick, int(rest[12]) / tick)
    return out


def socket_drops(port: int) -> int:
    """Datagrams the kernel dropped, over their lifetime, for a full receive buffer on
    the UDP sockets bound to `port` (the server's: several with SO_REUSEPORT)."""
    drops = 0
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    drops += int(fields[-1])
    return drops


def print_logs(logs: dict[str, list[str]]) -> None:
    """The first lines of note from each server's log, or that there were none."""
    for label, lines in logs.items():
        if lines:
            print(f"{label} log: {len(lines)} line(s) of note, first ones:")
            for line in lines[:5]:
                print(f"  | {line}")
        else:
            print(f"{label} log: nothing of note")


def geodns_serve_argv() -> list[str]:
    """`geodns serve` as the benchmarks start it: quiet, no admin HTTP side, no merged
    ECS scopes to build beside the measurement (bench/geo.py asks for them, and waits),
    and no response rate limiting: dnsperf is one source asking one name tens of
    thousands of times a second, which RRL exists to stop. The servers compared run
    without it too (NSD's is turned off in nsd_conf(); PowerDNS Authoritative and gdnsd
    have none)."""
    argv = [sys.executable, "-m", "geodns", "--log-level", "warning", "serve", "--http", "off"]
    return [*argv, "--scope-cache", "off", "--rrl-rate", "0"]


def free_port(taken: set[int]) -> int:
    """A port free for both UDP and TCP on HOST and not in `taken`, which it joins
    (the usual small race with other programs applies)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((HOST, port))
                except OSError:
                    continue
                if port not in taken:
                    taken.add(port)
                    return port
    raise BenchError("no free port on 127.0.0.1")


# --- servers -------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    workers: int
    port: int
    argv: list[str]
    log: Path
    pinning: str
    cwd: Path = ROOT
    proc: subprocess.Popen | None = None
    ready_after: float | None = None
    side_log: Path | None = None  # a log file the server writes itself (NSD's logfile)
    _started: float = 0.0
    _stopped: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers > 1 else ''})"

    def start(self) -> None:
        with self.log.open("wb") as logf:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we kill the whole group
            )
        self._started = time.monotonic()

    def wait_ready(self, zone: str) -> None:
        """Wait until several fresh sockets in a row get an answer to SOA (so every
        SO_REUSEPORT worker is likely to be up), or fail with the log's tail."""
        assert self.proc is not None
        query = dns.message.make_query(zone, "SOA", use_edns=False)
        deadline = self._started + START_TIMEOUT
        needed, streak = 4 * self.workers, 0
        while streak < needed:
            code = self.proc.poll()
            if code is not None:
                raise BenchError(f"{self.label} exited with {code} at start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.label} did not answer on {HOST}:{self.port} within "
                    f"{START_TIMEOUT:.0f} s\n{self.log_tail()}"
                )
            try:
                reply = dns.query.udp(query, HOST, port=self.port, timeout=0.25)
            except (dns.exception.DNSException, OSError):
                streak = 0
                time.sleep(0.05)
                continue
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                streak += 1
            else:
                raise BenchError(f"{self.label} answers SOA {zone} with {reply}")
        self.ready_after = round(time.monotonic() - self._started, 2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu(self) -> dict[int, tuple[float, float]]:
        return group_cpu(self.proc.pid) if self.proc else {}

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it if it lingers; returns the exit code."""
        if self.proc is None or self._stopped:
            return None if self.proc is None else self.proc.returncode
        self._stopped = True
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        # Children (NSD's server and xfrd, geodns workers) may outlive the leader briefly.
        for _ in range(int(STOP_TIMEOUT / 0.05)):
            if not group_cpu(pgid):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        return self.proc.returncode

    def log_lines(self) -> list[str]:
        lines = []
        for log in (self.log, self.side_log):
            if log is not None:
                with contextlib.suppress(OSError):
                    lines += log.read_text(errors="replace").splitlines()
        return lines

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Wait until the server's log has a line containing `text`."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.log_lines()):
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label}: no {text!r} within {timeout:.0f} s")
            time.sleep(0.1)

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_lines()
        return "\n".join(f"  | {x}" for x in text[-lines:]) or "  | (log is empty)"


def export_zone(zone_yaml: Path, workdir: Path) -> tuple[str, Path]:
    """`geodns export` the zone into workdir; returns (origin, master file)."""
    argv = [sys.executable, "-m", "geodns", "export", repo_relative(zone_yaml)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} failed ({out.returncode}):\n{out.stderr.strip()}")
    match = re.search(r"^\$ORIGIN\s+(\S+)", out.stdout, re.M)
    if not match:
        raise BenchError(f"{shlex.join(argv)} wrote no $ORIGIN line")
    origin = match.group(1).rstrip(".") + "."
    master = workdir / f"{origin}zone"
    master.write_text(out.stdout)
    if shutil.which("nsd-checkzone"):
        check = subprocess.run(
            ["nsd-checkzone", origin, str(master)], capture_output=True, text=True, timeout=60
        )
        if check.returncode != 0:
            raise BenchError(f"nsd-checkzone rejects the exported zone:\n{check.stderr.strip()}")
    return origin, master


def nsd_conf(workdir: Path, port: int, origin: str, master: Path, log: Path) -> Path:
    conf = workdir / "nsd.conf"
    conf.write_text(
        f"""# generated by bench/run.py
server:
    ip-address: {HOST}@{port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{workdir}"
    pidfile: "{workdir}/nsd.pid"
    xfrdfile: "{workdir}/xfrd.state"
    xfrdir: "{workdir}"
    zonelistfile: "{workdir}/zone.list"
    database: ""
    logfile: "{log}"
    verbosity: 0
    hide-version: yes
    # Debian's NSD has response rate limiting on: it would drop the benchmark's queries.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    # geodns sends minimal responses (no NS/glue in authority/additional for positive
    # answers); NSD does the same with this, so both put the same bytes on the wire.
    minimal-responses: yes

remote-control:
    control-enable: no

zone:
    name: "{origin}"
    zonefile: "{master.name}"
"""
    )
    return conf


def repo_relative(path: Path) -> str:
    """`path` relative to the repository (the servers' cwd) when it is inside it."""
    rel = os.path.relpath(path, ROOT)
    return str(path) if rel.startswith("..") else rel


def pin(cpu: int | str | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


# --- answers -------------------------------------------------------------------------


def read_queries(path: Path) -> list[tuple[str, str]]:
    queries = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, qtype = line.split()[:2]
            queries.append((name, qtype))
    if not queries:
        raise BenchError(f"{path}: no queries")
    return queries


def summarize(reply: dns.message.Message) -> tuple:
    def section(rrsets):  # order-insensitive: servers may rotate an RRset's records
        return sorted(sorted(r.to_text().splitlines()) for r in rrsets)

    return (
        dns.rcode.to_text(reply.rcode()),
        bool(reply.flags & dns.flags.AA),
        section(reply.answer),
        section(reply.authority),
    )


def compare_answers(queries: list[tuple[str, str]], ref: Server, other: Server) -> list[str]:
    """Ask both servers every query (no EDNS, as dnsperf sends them); list differences
    in rcode, AA, answer and authority."""
    differences = []
    for name, qtype in queries:
        query = dns.message.make_query(name, qtype, use_edns=False)
        got = []
        for server in (ref, other):
            try:
                got.append(summarize(dns.query.udp(query, HOST, port=server.port, timeout=2)))
            except (dns.exception.DNSException, OSError) as exc:
                got.append(f"no answer: {exc!r}")
        if got[0] != got[1]:
            differences.append(f"{name} {qtype}: {ref.name} {got[0]} / {other.name} {got[1]}")
    return differences


# --- dnsperf -------------------------------------------------------------------------

_FIELDS = {
    "sent": (r"Queries sent:\s+(\d+)", int),
    "completed": (r"Queries completed:\s+(\d+)", int),
    "lost": (r"Queries lost:\s+(\d+)", int),
    "interrupted": (r"Queries interrupted:\s+(\d+)", int),
    "run_time_s": (r"Run time \(s\):\s+([\d.]+)", float),
    "qps": (r"Queries per second:\s+([\d.]+)", float),
    "avg_latency_s": (r"Average Latency \(s\):\s+([\d.]+)", float),
    "min_latency_s": (r"Average Latency \(s\):\s+[\d.]+ \(min ([\d.]+)", float),
    "max_latency_s": (r"Average Latency \(s\):.*max ([\d.]+)\)", float),
    "latency_stddev_s": (r"Latency StdDev \(s\):\s+([\d.]+)", float),
    "request_bytes": (r"Average packet size:\s+request (\d+)", int),
    "response_bytes": (r"Average packet size:.*response (\d+)", int),
}


def parse_dnsperf(text: str) -> dict:
    stats: dict = {}
    for key, (pattern, conv) in _FIELDS.items():
        m = re.search(pattern, text)
        if m:
            stats[key] = conv(m.group(1))
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        stats["rcodes"] = {code: int(n) for code, n in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))}
    return stats


def dnsperf_argv(args: argparse.Namespace, port: int, cpu: int | None) -> list[str]:
    return pin(
        cpu,
        [
            "dnsperf",
            "-s",
            HOST,
            "-p",
            str(port),
            "-d",
            str(args.queries),
            "-l",
            f"{args.duration:g}",
            "-c",
            str(args.clients),
            "-q",
            str(args.outstanding),
            "-T",
            str(args.threads),
        ],
    )


def run_dnsperf(
    argv: list[str] | list[list[str]], server: Server, duration: float, raw: Path
) -> dict:
    """One dnsperf run against `server`, with the server's CPU time over it.

    `argv` may also be a list of command lines, started together (one per ECS subnet in
    bench/geo.py): their counts and rates are added up and their latencies combined
    (see merge_dnsperf), and each one's own figures are kept under "parts".
    """
    argvs = [argv] if isinstance(argv[0], str) else argv
    cpu_before, cores_before = server.cpu(), core_times()
    procs = [
        subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a in argvs
    ]
    outs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=duration + 60)
            outs.append((proc.returncode, stdout, stderr))
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"dnsperf against {server.label} did not finish: {exc}") from exc
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    cores, cpu_after = core_busy(cores_before, core_times()), server.cpu()
    parts = []
    with raw.open("a") as f:
        for a, (code, stdout, stderr) in zip(argvs, outs, strict=True):
            f.write(f"$ {shlex.join(a)}\n{stdout}{stderr}\n")
            part = parse_dnsperf(stdout)
            if code != 0 or "qps" not in part or not part.get("completed"):
                raise BenchError(
                    f"dnsperf against {server.label} failed (exit {code}):\n"
                    f"{(stderr or stdout).strip()[-2000:]}"
                )
            warnings = [x for x in (stdout + stderr).splitlines() if "arning" in x]
            if warnings:
                part["dnsperf_warnings"] = warnings[:10]
            parts.append(part)
    if not server.alive():
        raise BenchError(f"{server.label} died during the run\n{server.log_tail()}")
    stats = parts[0] if len(parts) == 1 else merge_dnsperf(parts)
    stats["core_busy_pct"] = cores
    spent = []  # (user, system) seconds per process during the run
    for pid, (user, system) in sorted(cpu_after.items()):
        user0, system0 = cpu_before.get(pid, (0.0, 0.0))
        spent.append((user - user0, system - system0))
    # idle helpers (NSD's main process and xfrd) left out
    stats["server_cpu_s"] = [round(u + s, 2) for u, s in spent if u + s >= 0.05]
    # CPU the server's processes spent per answered query: unlike qps, it does not
    # depend on whether dnsperf kept the server busy.
    per_query = 1e6 / stats["completed"]
    stats["server_user_us_per_query"] = round(per_query * sum(u for u, _ in spent), 2)
    stats["server_sys_us_per_query"] = round(per_query * sum(s for _, s in spent), 2)
    stats["server_cpu_us_per_query"] = round(per_query * sum(u + s for u, s in spent), 2)
    return stats


def merge_dnsperf(parts: list[dict]) -> dict:
    """Several concurrent dnsperf runs as one: counts and qps summed, run time the longest,
    mean latency and packet sizes weighted by completed queries, the pooled standard
    deviation, the extreme min and max; each run's own stats under "parts"."""
    merged: dict = {}
    for key in ("sent", "completed", "lost", "interrupted"):
        merged[key] = sum(p.get(key, 0) for p in parts)
    merged["qps"] = round(sum(p["qps"] for p in parts), 6)
    merged["run_time_s"] = max(p.get("run_time_s", 0.0) for p in parts)
    n = merged["completed"]
    mean = sum(p["completed"] * p.get("avg_latency_s", 0.0) for p in parts) / n
    merged["avg_latency_s"] = round(mean, 6)
    merged["min_latency_s"] = min(p.get("min_latency_s", 0.0) for p in parts)
    merged["max_latency_s"] = max(p.get("max_latency_s", 0.0) for p in parts)
    variance = (
        sum(
            p["completed"]
            * (p.get("latency_stddev_s", 0.0) ** 2 + (p.get("avg_latency_s", 0.0) - mean) ** 2)
            for p in parts
        )
        / n
    )
    merged["latency_stddev_s"] = round(variance**0.5, 6)
    for key in ("request_bytes", "response_bytes"):
        if all(key in p for p in parts):
            merged[key] = round(sum(p["completed"] * p[key] for p in parts) / n)
    rcodes: dict[str, int] = {}
    for p in parts:
        for code, count in p.get("rcodes", {}).items():
            rcodes[code] = rcodes.get(code, 0) + count
    merged["rcodes"] = rcodes
    warnings = [w for p in parts for w in p.get("dnsperf_warnings", [])]
    if warnings:
        merged["dnsperf_warnings"] = warnings[:10]
    merged["parts"] = parts
    return merged


# --- main ----------------------------------------------------------------------------


@dataclass
class Result:
    server: Server
    runs: list[dict] = field(default_factory=list)

    def median(self) -> dict:
        return sorted(self.runs, key=lambda r: r["qps"])[(len(self.runs) - 1) // 2]

    def as_json(self) -> dict:
        return {
            "server": self.server.name,
            "workers": self.server.workers,
            "pinning": self.server.pinning,
            "port": self.server.port,
            "command": shlex.join(self.server.argv),
            "ready_after_s": self.server.ready_after,
            "median": self.median() if self.runs else None,
            "runs": self.runs,
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--duration", type=float, help="seconds per dnsperf run (default: 10)")
    p.add_argument(
        "--workers", type=int, nargs="+", help="geodns worker counts to run (default: 1 2)"
    )
    p.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"dnsperf -c: client sockets (default: {DEFAULT_CLIENTS})",
    )
    p.add_argument(
        "--outstanding",
        type=int,
        default=DEFAULT_OUTSTANDING,
        help=f"dnsperf -q: queries in flight (default: {DEFAULT_OUTSTANDING})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"dnsperf -T (default: {DEFAULT_THREADS})",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help="rounds of runs, servers interleaved; the median-qps run is shown (default: 3)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    p.add_argument(
        "--quick", action="store_true", help="2 s runs, 1 worker, one round: proves it works"
    )
    p.add_argument("--zone", type=Path, default=DEFAULT_ZONE, help="geodns YAML zone to serve")
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help="dnsperf query file")
    p.add_argument("--logs", type=Path, default=DEFAULT_LOGS, help="where logs and raw output go")
    p.add_argument(
        "--random-names",
        type=int,
        metavar="N",
        help="instead of --queries, N random nonexistent names under the zone (A queries): "
        "the random-subdomain flood every answer cache misses",
    )
    args = p.parse_args(argv)
    if args.random_names:
        args.queries = write_random_names(args.random_names, args.zone, args.logs)
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.workers is None:
        args.workers = [1] if args.quick else [1, 2]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.workers = sorted(set(args.workers))
    if args.duration <= 0 or args.repeat < 1 or min(args.workers) < 1:
        p.error("--duration, --repeat and --workers must be positive")
    args.zone, args.queries = args.zone.absolute(), args.queries.absolute()
    return args


def write_random_names(count: int, zone: Path, logs: Path) -> Path:
    """A dnsperf query file of `count` distinct random names under the zone's origin."""
    origin = yaml.safe_load(zone.read_text())["zone"].rstrip(".")
    rng = random.Random(count)  # the same file for the same count: runs stay comparable
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"random-names-{count}.txt"
    letters = string.ascii_lowercase + string.digits
    with path.open("w") as fh:
        for _ in range(count):
            label = "".join(rng.choice(letters) for _ in range(12))
            fh.write(f"{label}.{origin} A\n")
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_bench(
    name: str, args: argparse.Namespace, bench_fn: Callable[[argparse.Namespace, list], int]
) -> int:
    """Run `bench_fn(args, servers)`; whatever happens, stop every server it started."""
    # SIGTERM (a CI timeout, say) unwinds like ^C, so the finally below reaps the servers.
    signal.signal(signal.SIGTERM, _interrupt)
    servers: list = []
    try:
        return bench_fn(args, servers)
    except BenchError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    return run_bench("bench", parse_args(argv), bench)


def bench(args: argparse.Namespace, servers: list[Server]) -> int:
    for tool in ("nsd", "dnsperf"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found on PATH (Debian: apt install nsd dnsperf)")
    cpus = os.sched_getaffinity(0)
    pinned = {CLIENT_CPU, SERVER_CPU} <= cpus and shutil.which("taskset") is not None
    client_cpu = CLIENT_CPU if pinned else None
    server_cpu = SERVER_CPU if pinned else None
    queries = read_queries(args.queries)
    machine = machine_info()
    notes = []
    if not pinned:
        notes.append("no pinning (needs taskset and CPUs 0 and 1): all processes share all cores")
    if any(w > 1 for w in args.workers):
        notes.append(
            f"geodns with more than 1 worker is not pinned: its workers share both cores "
            f"with dnsperf (pinned to core {CLIENT_CPU}), so its figure shows scaling only "
            f"roughly"
        )

    args.logs.mkdir(parents=True, exist_ok=True)
    raw = args.logs / "dnsperf.txt"
    raw.write_text("")
    with tempfile.TemporaryDirectory(prefix="geodns-bench-") as tmp:
        workdir = Path(tmp)
        origin, master = export_zone(args.zone, workdir)
        shutil.copy(master, args.logs / master.name)

        ports: set[int] = set()
        port = free_port(ports)
        nsd_log = args.logs / "nsd.log"
        nsd_log.unlink(missing_ok=True)
        conf = nsd_conf(workdir, port, origin, master, nsd_log.absolute())
        shutil.copy(conf, args.logs / "nsd.conf")
        nsd = Server(
            "nsd",
            1,
            port,
            pin(server_cpu, ["nsd", "-d", "-c", str(conf)]),
            args.logs / "nsd.stderr.log",
            f"core {SERVER_CPU}" if pinned else "none",
            cwd=workdir,
            side_log=nsd_log,
        )
        servers.append(nsd)
        # geodns serves the zone's directory (cwd is the repository: "zones" by default).
        zones_dir = repo_relative(args.zone.parent)
        for workers in args.workers:
            port = free_port(ports)
            cmd = [*geodns_serve_argv(), "--zones", zones_dir, "--listen", f"{HOST}:{port}"]
            cmd += ["--workers", str(workers)]
            one = workers == 1 and pinned
            servers.append(
                Server(
                    "geodns",
                    workers,
                    port,
                    pin(server_cpu if one else None, cmd),
                    args.logs / f"geodns-w{workers}.log",
                    f"core {SERVER_CPU}" if one else "none",
                )
            )
        # Start them all; each is idle while another is measured.
        for server in servers:
            server.start()
            server.wait_ready(origin)

        differences = []
        for server in servers[1:]:
            differences += compare_answers(queries[:200], nsd, server)

        results = [Result(s) for s in servers]
        commands = {s.label: dnsperf_argv(args, s.port, client_cpu) for s in servers}
        total = args.repeat * len(servers)
        print(
            f"benchmarking {len(servers)} servers x {args.repeat} round(s) x "
            f"{args.duration:g} s (about {total * (args.duration + SETTLE):.0f} s)...",
            file=sys.stderr,
        )
        for round_ in range(args.repeat):
            for result in results:
                time.sleep(SETTLE)
                server = result.server
                stats = run_dnsperf(commands[server.label], server, args.duration, raw)
                result.runs.append(stats)
                print(
                    f"  round {round_ + 1}: {result.server.label}: {stats['qps']:,.0f} qps, "
                    f"lost {stats.get('lost', 0)}",
                    file=sys.stderr,
                )

        exit_codes = {server.label: server.stop() for server in servers}

    report = {
        "machine": machine,
        "config": {
            "zone": str(args.zone),
            "queries": str(args.queries),
            "query_count": len(queries),
            "duration_s": args.duration,
            "repeat": args.repeat,
            "clients": args.clients,
            "outstanding": args.outstanding,
            "threads": args.threads,
            "pinning": {"dnsperf": client_cpu, "servers": server_cpu},
        },
        "dnsperf_commands": {k: shlex.join(v) for k, v in commands.items()},
        "answer_differences": differences,
        "results": [r.as_json() for r in results],
        "notes": notes,
        "logs": log_findings(servers),
        "exit_codes_on_sigterm": exit_codes,
    }
    ref = results[0].median()["qps"]
    report["ratio_geodns_to_nsd_qps"] = {
        str(r.server.workers): round(r.median()["qps"] / ref, 3) for r in results[1:]
    }
    report["ratio_geodns_to_nsd_cpu_per_query"] = {
        str(r.server.workers): round(
            r.median()["server_cpu_us_per_query"] / results[0].median()["server_cpu_us_per_query"],
            3,
        )
        for r in results[1:]
    }
    print_report(report)
    write_json(args.json, report)
    return 0


def write_json(path: Path | None, report: dict) -> None:
    """The report as JSON at `path`, when one was asked for (--json)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON written to {path}")


def log_findings(servers: list[Server]) -> dict[str, list[str]]:
    """Lines worth a look in each server's log: anything geodns logs at --log-level
    warning, NSD's warnings and errors (its shutdown notice aside)."""
    findings = {}
    for server in servers:
        lines = server.log_lines()
        if server.name == "nsd":
            lines = [x for x in lines if re.search(r"error|warning", x, re.I)]
            lines = [x for x in lines if "signal received, shutting down" not in x]
        findings[server.label] = lines
    return findings


def result_cells(result: dict) -> tuple[dict, str, dict, str]:
    """What both benchmarks' tables show of one server's runs: the median run, the qps
    range over the runs, each core's busy share, and CPU us per query (user+sys)."""
    med = result["median"]
    qps = [run["qps"] for run in result["runs"]]
    spread = f"{min(qps):,.0f}-{max(qps):,.0f}" if len(qps) > 1 else ""
    us_q = f"{med['server_user_us_per_query']:.1f}+{med['server_sys_us_per_query']:.1f}"
    return med, spread, med["core_busy_pct"], us_q


def print_report(report: dict) -> None:
    m, c = report["machine"], report["config"]
    print()
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; "
        f"NSD {m['nsd']}, dnsperf {m['dnsperf']}, geodns {m['geodns']}, Python {m['python']}"
    )
    print(
        f"load: {c['query_count']} distinct queries from {c['queries']}, "
        f"{c['duration_s']:g} s per run, {c['repeat']} round(s), servers interleaved"
        + ("; the median-qps run of each is shown" if c["repeat"] > 1 else "")
    )
    print("dnsperf commands:")
    for label, cmd in report["dnsperf_commands"].items():
        print(f"  {label}: {cmd}")
    print()
    header = (
        f"{'server':<8} {'workers':>7} {'pinned':>7} {'qps':>9} {'qps range':>17} "
        f"{'avg ms':>7} {'max ms':>7} {'lost':>6} {'cpu0%':>6} {'cpu1%':>6} {'us/q usr+sys':>13}"
        "  server CPU s"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        med, spread, busy, us_q = result_cells(r)
        print(
            f"{r['server']:<8} {r['workers']:>7} {r['pinning']:>7} {med['qps']:>9,.0f} "
            f"{spread:>17} {med['avg_latency_s'] * 1000:>7.3f} "
            f"{med['max_latency_s'] * 1000:>7.2f} {med.get('lost', 0):>6} "
            f"{busy.get(CLIENT_CPU, 0):>6.0f} {busy.get(SERVER_CPU, 0):>6.0f} "
            f"{us_q:>13}  " + "+".join(f"{t:g}" for t in med["server_cpu_s"])
        )
    print()
    for workers, ratio in report["ratio_geodns_to_nsd_cpu_per_query"].items():
        plural = "s" if workers != "1" else ""
        print(f"geodns/NSD CPU per query (user+sys), {workers} worker{plural}: {ratio:.2f}")
    for workers, ratio in report["ratio_geodns_to_nsd_qps"].items():
        extra = "" if workers == "1" else "  (rough: not pinned, shares dnsperf's core)"
        plural = "s" if workers != "1" else ""
        print(f"geodns/NSD qps, {workers} worker{plural}: {ratio:.2f}{extra}")
    print(
        f"cpu0%/cpu1%: busy share of core {CLIENT_CPU} (dnsperf) and core {SERVER_CPU} "
        "(server) during the run, softirq included; us/q: server CPU time (all its "
        "processes, user + system) in microseconds per completed query; "
        "server CPU s: per process"
    )
    for r in report["results"]:
        busy = r["median"]["core_busy_pct"]
        if r["pinning"] != "none" and busy.get(CLIENT_CPU, 0) >= 95 > busy.get(SERVER_CPU, 0):
            print(
                f"note: {r['server']} ({r['workers']}): dnsperf's core was saturated and the "
                f"server's was not: its qps is a lower bound set by the load generator "
                f"(on loopback the sender's core also runs the receive path); "
                f"compare us/q"
            )
    for note in report["notes"]:
        print(f"note: {note}")
    if report["answer_differences"]:
        print("WARNING: the servers answer differently:")
        for d in report["answer_differences"]:
            print(f"  {d}")
    else:
        print("answers: NSD and geodns agree on every query (rcode, AA, answer, authority)")
    for label, code in report["exit_codes_on_sigterm"].items():
        if code != 0:
            print(f"WARNING: {label} exited with {code} when stopped with SIGTERM")
    print_logs(report["logs"])


if __name__ == "__main__":
    sys.exit(main())
