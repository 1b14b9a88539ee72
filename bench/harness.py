"""What every benchmark here shares: the machine, the servers it starts, dnsperf and its
figures, the run's pinning and its report's plumbing. Each benchmark file (run.py, geo.py,
fleet.py, reload.py, ...) holds its own servers' configuration, load and tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

ROOT = Path(__file__).resolve().parent.parent

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
BACKGROUND_SAMPLE = 0.3  # seconds of core usage sampled before each run


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


def group_memory(pgid: int) -> list[dict]:
    """Each process of a process group: its pid, name (/proc/PID/comm), resident set and
    proportional set size in MB (PSS shares each page out between the processes that map
    it: what the process adds, where RSS counts a page shared with its twin in both)."""
    out = []
    for pid in sorted(group_cpu(pgid)):
        fields: dict[str, int] = {}
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    fields[key] = int(value.split()[0])
        except (OSError, ValueError):
            continue
        if len(fields) == 2:
            mb = {k: round(v / 1024, 1) for k, v in fields.items()}
            out.append({"pid": pid, "name": name, "rss_mb": mb["Rss"], "pss_mb": mb["Pss"]})
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


def background_busy() -> float:
    """How busy both cores are, together, while nothing of ours runs (0-100)."""
    before = core_times()
    time.sleep(BACKGROUND_SAMPLE)
    busy = core_busy(before, core_times())
    return round(sum(busy.values()) / max(1, len(busy)), 1)


def git_revision() -> str:
    """The commit the servers' code is at, and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes' if dirty else ''}"


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


def repo_relative(path: Path) -> str:
    """`path` relative to the repository (the servers' cwd) when it is inside it."""
    rel = os.path.relpath(path, ROOT)
    return str(path) if rel.startswith("..") else rel


def pin(cpu: int | str | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


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


# --- runs and reports ----------------------------------------------------------------

NO_PINNING = "no pinning (needs taskset and CPUs 0 and 1): all processes share all cores"


@dataclass(frozen=True)
class Pinning:
    """Where dnsperf and the servers run: CLIENT_CPU and SERVER_CPU when the machine has
    both and taskset, else anywhere (None)."""

    pinned: bool
    cpus: frozenset[int]  # the cores this process may use

    @property
    def client_cpu(self) -> int | None:
        return CLIENT_CPU if self.pinned else None

    @property
    def server_cpu(self) -> int | None:
        return SERVER_CPU if self.pinned else None


def pinning() -> Pinning:
    cpus = frozenset(os.sched_getaffinity(0))
    return Pinning({CLIENT_CPU, SERVER_CPU} <= cpus and shutil.which("taskset") is not None, cpus)


def add_common_arguments(p: argparse.ArgumentParser, zone: Path, logs: Path) -> None:
    """The options every load benchmark takes alike: rounds, JSON, zone, logs."""
    p.add_argument(
        "--repeat",
        type=int,
        help="rounds of runs, servers interleaved; the median-qps run is shown (default: 3)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    p.add_argument("--zone", type=Path, default=zone, help="geodns YAML zone to serve")
    p.add_argument("--logs", type=Path, default=logs, help="where logs and raw output go")


def quick_defaults(args: argparse.Namespace) -> None:
    """--duration and --repeat where not given: 10 s runs and 3 rounds, or with --quick
    2 s and one round, enough to prove the benchmark works (CI)."""
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3


def start_all(servers: list[Server], origin: str) -> None:
    """Start every server and wait until each answers for `origin`; each is idle while
    another is measured."""
    for server in servers:
        server.start()
        server.wait_ready(origin)


def stop_all(servers: list[Server]) -> dict[str, int | None]:
    """Stop every server with SIGTERM: {label: exit code} for the report."""
    return {server.label: server.stop() for server in servers}


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


def write_json(path: Path | None, report: dict) -> None:
    """The report as JSON at `path`, when one was asked for (--json)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON written to {path}")


def load_bound(result: dict) -> bool:
    """Whether a pinned server's median run was limited by dnsperf: its core saturated
    while the server's was not, so that the qps is a lower bound set by the load generator."""
    busy = result["median"]["core_busy_pct"]
    return result["pinning"] != "none" and busy.get(CLIENT_CPU, 0) >= 95 > busy.get(SERVER_CPU, 0)


def result_cells(result: dict) -> tuple[dict, str, dict, str]:
    """What both benchmarks' tables show of one server's runs: the median run, the qps
    range over the runs, each core's busy share, and CPU us per query (user+sys)."""
    med = result["median"]
    qps = [run["qps"] for run in result["runs"]]
    spread = f"{min(qps):,.0f}-{max(qps):,.0f}" if len(qps) > 1 else ""
    us_q = f"{med['server_user_us_per_query']:.1f}+{med['server_sys_us_per_query']:.1f}"
    return med, spread, med["core_busy_pct"], us_q
