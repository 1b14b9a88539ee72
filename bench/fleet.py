#!/usr/bin/env python3
"""Measure a fleet on etcd: how fast a drain and a majority's verdict reach every node's
answers, and whether attaching the store costs the DNS hot path anything.

Everything runs on loopback on this machine: a 3-member etcd (tests/etcd_cluster.py, data
on /dev/shm), three simulated regions (tests/regions.py) and three geodns nodes checking
them every second (rise 1, fall 1: one failed probe marks a region down), quorum majority.

  (a) drain: POST a drain of us-east-1 to node0's admin API, and poll all three nodes
      with UDP queries (ECS 216.160.83.0/24, a US client: us-east-1 while it is up) in
      a tight loop, until each answers without us-east-1. Times from sending the POST,
      and from its reply, to the last node's change. Then `auto`, and wait for all.
  (b) majority down: make the simulated us-east-1 fail (HTTP 500) at t0; every node's
      next probe sees it down, so a majority does. Time from t0 to the last node's
      change: up to one probe interval for the probes, plus the propagation. Then
      healthy again, and wait for all.
  (c) throughput: node2 is replaced by one geodns pinned to one core (--workers 1,
      --rrl-rate 0), loaded by dnsperf pinned to the other, with A queries for the
      service carrying ECS from a few hundred client /24s; once with the embedded store
      and once with --store on the running etcd. In both, node0 and node1 keep probing
      and publishing their votes, and a drain of us-east-1 is toggled every second
      through node0: attached, the node under load applies each change too (its store
      revision is read before and after to show it). Orders alternate between rounds.

    python bench/fleet.py                  # 20 drains, 20 failures, 2 rounds of 10 s
    python bench/fleet.py --quick          # 5, 5, one round of 2 s: proves it works
    python bench/fleet.py --json bench/results/fleet.json

Needs etcd (3.4+), dnsperf and taskset (Debian: apt install etcd-server etcd-client dnsperf)
and the test extras (pip install -e '.[test]'): it reuses the tests' etcd cluster and
simulated regions. Run it from the repository's root. Logs go to bench/results/logs/fleet/.
Exits 1 if a node does not start, a change does not reach every node in time, or dnsperf
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import random
import shlex
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    SETTLE,
    BenchError,
    Result,
    Server,
    background_busy,
    free_port,
    geodns_serve_argv,
    machine_info,
    pin,
    pinning,
    print_logs,
    run_bench,
    run_dnsperf,
    socket_drops,
    write_json,
)
from tests.e2e.test_rolling_update import ADDRESSES, NAMES, US  # noqa: E402
from tests.fleet import TOKEN, fleet_zone  # noqa: E402

DEFAULT_LOGS = ROOT / "bench" / "results" / "logs" / "fleet"
ORIGIN = "example.com."
SERVICE = "inference.example.com"
REGION = "us-east-1"  # the region drained and failed; the US client's first choice
FORCE = f"/api/services/{SERVICE}/regions/{REGION}/state"
PROBE_INTERVAL = 1.0  # seconds; rise 1, fall 1 (tests/fleet.py fleet_zone)
NODES = 3
LOADED = 2  # the node replaced by the pinned one in (c)
CONVERGE_TIMEOUT = 10.0  # seconds for a change to reach every node before the run fails
POLL_TIMEOUT = 0.2  # seconds to wait for one poll's reply (a lost one is asked again)
TOGGLE_EVERY = 1.0  # seconds between drain toggles during (c)
FOLLOW_WAIT = 0.5  # seconds to ask the loaded node for a drain's effect in (c)...
FOLLOW_PACE = 0.005  # ...once every this many seconds
QUIET_BUSY = 15.0  # % busy (both cores) under which the machine counts as settled for a run
WARM_UP = 1.0  # seconds of load before each measured run, not counted
ECS_CLIENTS = 500  # distinct client /24s in (c)'s query file
DNSPERF_CLIENTS, DNSPERF_OUTSTANDING, DNSPERF_THREADS = 10, 500, 2  # as bench/run.py


class Poller:
    """One connected UDP socket per node and one prebuilt query: what a node answers the
    US client, as the set of A addresses, asked as fast as the node replies."""

    def __init__(self, ports: list[int], subnet: str = US) -> None:
        address, prefix = subnet.split("/")
        query = dns.message.make_query(SERVICE, "A")
        query.use_edns(0, options=[dns.edns.ECSOption(address, int(prefix))])
        self.query = query
        self.socks = []
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect((HOST, port))
            sock.settimeout(POLL_TIMEOUT)
            self.socks.append(sock)

    def ask(self, i: int) -> frozenset[str] | None:
        """node i's A addresses, or None when it did not answer in time."""
        self.query.id = random.randrange(1 << 16)
        sock = self.socks[i]
        sock.send(self.query.to_wire())
        deadline = time.monotonic() + POLL_TIMEOUT
        while time.monotonic() < deadline:
            try:
                reply = dns.message.from_wire(sock.recv(4096))
            except (TimeoutError, dns.exception.DNSException):
                return None
            if reply.id == self.query.id:  # else a late reply to an earlier poll
                return frozenset(
                    r.address
                    for rrset in reply.answer
                    if rrset.rdtype == dns.rdatatype.A
                    for r in rrset
                )
        return None

    def until(
        self, holds: Callable[[frozenset[str]], bool], what: str, nodes: list[int] | None = None
    ) -> dict[int, float]:
        """Ask the nodes round-robin until each has answered once as `holds` wants; the
        perf_counter() at which each first did (one round takes well under a ms)."""
        waiting = list(range(len(self.socks))) if nodes is None else list(nodes)
        seen: dict[int, float] = {}
        deadline = time.perf_counter() + CONVERGE_TIMEOUT
        while waiting:
            for i in list(waiting):
                answer = self.ask(i)
                if answer is not None and holds(answer):
                    seen[i] = time.perf_counter()
                    waiting.remove(i)
            if waiting and time.perf_counter() > deadline:
                names = ", ".join(f"node{i}" for i in waiting)
                raise BenchError(f"{names}: {what} not seen within {CONVERGE_TIMEOUT:g} s")
        return seen

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def serving(address: str) -> Callable[[frozenset[str]], bool]:
    return lambda answer: address in answer


def not_serving(address: str) -> Callable[[frozenset[str]], bool]:
    return lambda answer: bool(answer) and address not in answer


# --- admin API -----------------------------------------------------------------------


def admin(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST `body` with the token) on a node's admin API: status, decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (OSError, ValueError) as exc:
        return 0, {"error": repr(exc)}


def force(port: int, state: str) -> tuple[int, dict]:
    return admin(port, FORCE, {"state": state, "by": "bench/fleet.py"})


def fleet_state(port: int) -> dict:
    status, body = admin(port, "/api/state")
    if status != 200:
        raise BenchError(f"GET http://{HOST}:{port}/api/state: {status} {body}")
    return body["fleet"]


# --- the fleet -----------------------------------------------------------------------


@dataclass
class Node:
    server: Server
    http_port: int

    @property
    def port(self) -> int:
        return self.server.port


@dataclass
class Fleet:
    store: str
    prefix: str
    zone: str
    workdir: Path
    logs: Path
    token_file: Path
    ports: set[int] = field(default_factory=set)
    nodes: list[Node] = field(default_factory=list)

    def node_argv(
        self, i: int, *, store: bool, dns_port: int, http_port: int, workers: int = 1
    ) -> list[str]:
        """`geodns serve` for node i, as bench/run.py starts geodns (RRL and merged scopes
        off, --log-level warning) plus the admin side and the fleet's options."""
        zones = self.workdir / f"node{i}" / "zones"
        zones.mkdir(parents=True, exist_ok=True)
        (zones / "example.com.yaml").write_text(self.zone)
        argv = geodns_serve_argv()
        argv[argv.index("--http") + 1] = f"{HOST}:{http_port}"
        argv += ["--zones", str(zones), "--listen", f"{HOST}:{dns_port}"]
        argv += ["--workers", str(workers), "--watch-interval", "0"]
        argv += ["--admin-token-file", str(self.token_file)]
        if store:
            state = self.workdir / f"node{i}" / "state"
            argv += ["--store", self.store, "--store-prefix", self.prefix]
            argv += ["--node-name", f"node{i}", "--state-dir", str(state)]
        else:
            state = self.workdir / f"node{i}" / f"embedded-{time.monotonic_ns()}"
            argv += ["--state-dir", str(state)]
        return argv

    def start(self, i: int, *, store: bool = True, cpu: int | None = None, label: str = "") -> Node:
        dns_port, http_port = free_port(self.ports), free_port(self.ports)
        argv = self.node_argv(i, store=store, dns_port=dns_port, http_port=http_port)
        name = label or f"node{i}"
        server = Server(
            name,
            1,
            dns_port,
            pin(cpu, argv),
            self.logs / f"{name}.log",
            "none" if cpu is None else f"core {cpu}",
        )
        server.start()
        node = Node(server, http_port)
        try:
            server.wait_ready(ORIGIN)
            if store:
                self.wait_attached(node)
        except BaseException:
            server.stop()
            raise
        return node

    def wait_attached(self, node: Node) -> None:
        """Until the node is connected to etcd and lists itself among the fleet's nodes."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while True:
            fleet = fleet_state(node.http_port)
            names = {n["name"] for n in fleet["nodes"]}
            if fleet["store"]["connected"] and fleet["node"] in names:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{node.server.name} not attached to {self.store} within "
                    f"{CONVERGE_TIMEOUT:g} s: {fleet['store']}\n{node.server.log_tail()}"
                )
            time.sleep(0.05)


@contextlib.contextmanager
def running_fleet(args: argparse.Namespace, servers: list[Server]) -> Iterator[tuple]:
    """(regions, etcd cluster, fleet) with every node up and answering us-east-1."""
    # Imported here: they need the test extras, and etcd_cluster reports through pytest.
    import pytest

    from tests.etcd_cluster import etcd_cluster
    from tests.regions import regions_in_thread

    with contextlib.ExitStack() as stack:
        regions = stack.enter_context(regions_in_thread(*NAMES, version="41"))
        try:
            cluster = stack.enter_context(etcd_cluster(3))
        except pytest.fail.Exception as exc:  # etcd did not start: its log is in the message
            raise BenchError(f"etcd: {exc}") from None
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="geodns-fleet-")))
        token = workdir / "admin-token"
        token.write_text(TOKEN + "\n")
        zone = fleet_zone({n: r.port for n, r in regions.items()}, interval=PROBE_INTERVAL)
        fleet = Fleet(cluster.url, "/bench-fleet/", zone, workdir, args.logs, token)
        for i in range(NODES):
            node = fleet.start(i)
            servers.append(node.server)
            fleet.nodes.append(node)
        poller = Poller([n.port for n in fleet.nodes])
        stack.callback(poller.close)
        poller.until(serving(ADDRESSES[REGION]), f"{REGION} in the answer at start")
        for node in fleet.nodes:
            wait_for_nodes(node, NODES)
        yield regions, cluster, fleet, poller


def wait_for_nodes(node: Node, count: int) -> None:
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while len(fleet_state(node.http_port)["nodes"]) < count:
        if time.monotonic() > deadline:
            raise BenchError(f"{node.server.name} does not list {count} nodes")
        time.sleep(0.05)


# --- (a) and (b) ---------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """min, median, p95 (nearest rank) and max, in seconds."""
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "n": len(ordered),
        "min": round(ordered[0], 4),
        "median": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "max": round(ordered[-1], 4),
    }


def measure_drains(fleet: Fleet, poller: Poller, repeat: int, rng: random.Random) -> dict:
    """(a): a drain through node0's admin API until no node answers us-east-1."""
    us = ADDRESSES[REGION]
    from_post, from_reply, back, runs = [], [], [], []
    for n in range(repeat):
        time.sleep(rng.uniform(0.2, 1.2))  # spread the POSTs over the probe rounds
        reply: dict = {}

        def send(state: str = "drain", out: dict = reply) -> None:
            out["status"], out["body"] = force(fleet.nodes[0].http_port, state)
            out["at"] = time.perf_counter()

        sender = threading.Thread(target=send)
        sent = time.perf_counter()
        sender.start()  # the polls start at once: a node may change before the reply
        seen = poller.until(not_serving(us), f"drain {n + 1}")
        sender.join()
        if reply["status"] != 200:
            raise BenchError(f"POST drain to node0: {reply['status']} {reply['body']}")
        last = max(seen.values())
        from_post.append(last - sent)
        from_reply.append(last - reply["at"])
        status, body = force(fleet.nodes[0].http_port, "auto")
        if status != 200:
            raise BenchError(f"POST auto to node0: {status} {body}")
        undone = time.perf_counter()
        returned = poller.until(serving(us), f"auto {n + 1}")
        back.append(max(returned.values()) - undone)
        runs.append(
            {
                "from_post_s": round(last - sent, 4),
                "from_reply_s": round(last - reply["at"], 4),
                "post_reply_s": round(reply["at"] - sent, 4),
                "per_node_from_post_s": {f"node{i}": round(t - sent, 4) for i, t in seen.items()},
            }
        )
        print(
            f"  drain {n + 1}/{repeat}: last node {1000 * (last - sent):.1f} ms after the "
            f"POST, {1000 * (last - reply['at']):.1f} ms after its reply",
            file=sys.stderr,
        )
    return {
        "from_post_s": summary(from_post),
        "from_reply_s": summary(from_reply),
        "auto_back_from_reply_s": summary(back),
        "runs": runs,
    }


def measure_majority(regions: dict, poller: Poller, repeat: int, rng: random.Random) -> dict:
    """(b): us-east-1 fails for every node at t0, until no node answers it."""
    us = ADDRESSES[REGION]
    region = regions[REGION]
    down, up, runs = [], [], []
    for n in range(repeat):
        time.sleep(rng.uniform(0.2, 1.2))  # t0 anywhere in the probe round
        t0 = time.perf_counter()
        region.mode = "failing"
        seen = poller.until(not_serving(us), f"{REGION} down {n + 1}")
        last = max(seen.values()) - t0
        down.append(last)
        time.sleep(rng.uniform(0.2, 1.2))
        t1 = time.perf_counter()
        region.mode = "healthy"
        returned = poller.until(serving(us), f"{REGION} up again {n + 1}")
        up.append(max(returned.values()) - t1)
        runs.append(
            {
                "down_s": round(last, 4),
                "per_node_down_s": {f"node{i}": round(t - t0, 4) for i, t in seen.items()},
                "up_s": round(up[-1], 4),
            }
        )
        print(
            f"  failure {n + 1}/{repeat}: gone from every node {1000 * last:.0f} ms after t0, "
            f"back {1000 * up[-1]:.0f} ms after healthy",
            file=sys.stderr,
        )
    return {
        "probe_interval_s": PROBE_INTERVAL,
        "down_s": summary(down),
        "up_again_s": summary(up),
        "runs": runs,
    }


# --- (c) -----------------------------------------------------------------------------


def ecs_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """The US client's /24 and `count - 1` other public /24s, the same for every run."""
    rng = random.Random(count)
    nets = [ipaddress.IPv4Network(US)]
    while len(nets) < count:
        net = ipaddress.IPv4Network((rng.randrange(1 << 24) << 8, 24))
        if net.network_address.is_global and not net.is_multicast and net not in nets:
            nets.append(net)
    return nets


def write_query_file(path: Path, subnets: list[ipaddress.IPv4Network]) -> None:
    """dnsperf -B input: 2-octet length, then the query (A for the service, EDNS with
    ECS source /24) in wire format, one per subnet; dnsperf sets the IDs."""
    with path.open("wb") as out:
        for net in subnets:
            query = dns.message.make_query(SERVICE, "A")
            query.use_edns(
                0, payload=1232, options=[dns.edns.ECSOption(str(net.network_address), 24)]
            )
            wire = query.to_wire()
            out.write(struct.pack("!H", len(wire)) + wire)


def dnsperf_argv(queries: Path, port: int, duration: float, cpu: int | None) -> list[str]:
    argv = ["dnsperf", "-B", "-d", str(queries), "-s", HOST, "-p", str(port)]
    argv += ["-l", f"{duration:g}", "-c", str(DNSPERF_CLIENTS), "-q", str(DNSPERF_OUTSTANDING)]
    return pin(cpu, [*argv, "-T", str(DNSPERF_THREADS)])


class Toggler:
    """Drain and give back us-east-1 through node0 every TOGGLE_EVERY s, in a thread. After
    each drain, ask the node under load every FOLLOW_PACE s for FOLLOW_WAIT s (the same
    queries whether or not it follows, so that both modes carry the same extra load): how
    long a drain takes to reach a node busy answering."""

    def __init__(self, port: int, loaded_port: int) -> None:
        self.port = port
        self.poller = Poller([loaded_port])
        self.stop = threading.Event()
        self.sent = 0
        self.failed: list[str] = []
        self.drains = 0
        self.followed: list[float] = []  # seconds from a drain's reply to the loaded node's
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        us, state = ADDRESSES[REGION], "drain"
        start = time.perf_counter()
        # A fixed clock: a change every TOGGLE_EVERY s, however long the asking took.
        while not self.stop.wait(TOGGLE_EVERY - (time.perf_counter() - start) % TOGGLE_EVERY):
            status, body = force(self.port, state)
            replied = time.perf_counter()
            self.sent += 1
            if status != 200:
                self.failed.append(f"{state}: {status} {body}")
            if state == "drain":
                self.drains += 1
                seen = None
                while time.perf_counter() - replied < FOLLOW_WAIT:
                    answer = self.poller.ask(0)
                    if seen is None and answer is not None and us not in answer and answer:
                        seen = time.perf_counter() - replied
                    time.sleep(FOLLOW_PACE)
                if seen is not None:
                    self.followed.append(seen)
            state = "auto" if state == "drain" else "drain"

    def __enter__(self) -> Toggler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.poller.close()
        force(self.port, "auto")


def idle_cpu(server: Server, seconds: float) -> float:
    """The server's CPU use (user + system, all its processes) over `seconds`, in % of a core."""
    before = server.cpu()
    time.sleep(seconds)
    after = server.cpu()
    spent = sum(u + s for u, s in after.values()) - sum(u + s for u, s in before.values())
    return round(100 * spent / seconds, 1)


def wait_quiet(timeout: float, limit: float = QUIET_BUSY) -> float:
    """Until both cores together are less than `limit` % busy (a node just started still
    loads its GeoIP database and zones), or `timeout` s; the last sample."""
    deadline = time.monotonic() + timeout
    busy = background_busy()
    while busy >= limit and time.monotonic() < deadline:
        busy = background_busy()
    return busy


def measure_throughput(
    args: argparse.Namespace, fleet: Fleet, servers: list[Server], pinned: bool
) -> dict:
    """(c): the pinned node under dnsperf, embedded store or attached, orders alternating."""
    client_cpu = CLIENT_CPU if pinned else None
    server_cpu = SERVER_CPU if pinned else None
    queries = args.logs / "fleet-queries.bin"
    subnets = ecs_subnets(ECS_CLIENTS)
    write_query_file(queries, subnets)
    raw = args.logs / "dnsperf.txt"
    raw.write_text("")

    # node2 makes way for the pinned node; node0 and node1 go on probing and voting.
    old = fleet.nodes[LOADED].server
    old.stop()
    servers.remove(old)

    modes = {"embedded": False, "etcd": True}
    results: dict[str, Result] = {}
    commands: dict[str, str] = {}
    for round_ in range(args.repeat):
        order = ["embedded", "etcd"] if round_ % 2 == 0 else ["etcd", "embedded"]
        for mode in order:
            label = f"loaded-{mode}-r{round_ + 1}"
            node = fleet.start(LOADED, store=modes[mode], cpu=server_cpu, label=label)
            servers.append(node.server)
            result = results.setdefault(mode, Result(node.server))
            commands[mode] = shlex.join(node.server.argv)
            wait_quiet(args.quiet_wait)
            # The node's own CPU while no DNS load runs: its control plane's cost (probes,
            # the fleet's changes it applies, its writes), without and with drains toggled.
            idle = idle_cpu(node.server, args.idle_sample)
            with Toggler(fleet.nodes[0].http_port, node.port):
                idle_toggled = idle_cpu(node.server, args.idle_sample)
            warm = dnsperf_argv(queries, node.port, WARM_UP, client_cpu)
            run_dnsperf(warm, node.server, WARM_UP, raw)  # first queries, first lookups
            time.sleep(SETTLE)
            before = fleet_state(node.http_port)["store"]["revision"]
            background = wait_quiet(args.quiet_wait)
            drops = socket_drops(node.port)
            argv = dnsperf_argv(queries, node.port, args.duration, client_cpu)
            with Toggler(fleet.nodes[0].http_port, node.port) as toggler:
                stats = run_dnsperf(argv, node.server, args.duration, raw)
            after = fleet_state(node.http_port)["store"]["revision"]
            stats.update(
                {
                    "round": round_ + 1,
                    "background_busy_pct": background,
                    "server_socket_drops": socket_drops(node.port) - drops,
                    "dnsperf_command": shlex.join(argv),
                    "idle_cpu_pct": idle,
                    "idle_cpu_pct_drains_toggled": idle_toggled,
                    "drain_toggles": toggler.sent,
                    "drain_toggles_failed": toggler.failed,
                    "drains": toggler.drains,
                    "drains_seen_at_loaded_node": len(toggler.followed),
                    "drain_to_loaded_node_s": summary(toggler.followed)
                    if toggler.followed
                    else None,
                    "store_revision_before": before,
                    "store_revision_after": after,
                }
            )
            result.runs.append(stats)
            commands["dnsperf"] = shlex.join(argv)  # the last run's; each run's in its stats
            print(
                f"  round {round_ + 1}: {mode}: {stats['qps']:,.0f} qps, "
                f"{1000 * stats['avg_latency_s']:.3f} ms mean, lost {stats.get('lost', 0)}, "
                f"{toggler.drains} drains, {len(toggler.followed)} seen in its answers, "
                f"store revision {before} -> {after}",
                file=sys.stderr,
            )
            node.server.stop()
    return {
        "queries": f"{len(subnets)} A {SERVICE} queries with ECS from distinct /24s (dnsperf -B)",
        "duration_s": args.duration,
        "repeat": args.repeat,
        "pinning": {"dnsperf": client_cpu, "server": server_cpu},
        "commands": commands,
        "results": {mode: r.as_json() for mode, r in results.items()},
    }


# --- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--repeat-drains", type=int, help="drains to time (default: 20, quick: 5)")
    p.add_argument("--repeat-failures", type=int, help="failures to time (default: 20, quick: 5)")
    p.add_argument("--duration", type=float, help="seconds per dnsperf run (default: 10, quick: 2)")
    p.add_argument(
        "--repeat", type=int, help="throughput rounds, orders alternating (default: 2, quick: 1)"
    )
    p.add_argument("--quick", action="store_true", help="short runs: proves it works")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    p.add_argument("--logs", type=Path, default=DEFAULT_LOGS, help="where logs and raw output go")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait, before each dnsperf run, for the machine to be less than\n"
        f"{QUIET_BUSY:g}%% busy (default: 20, quick: 2)",
    )
    p.add_argument(
        "--idle-sample",
        type=float,
        help="seconds the loaded node's idle CPU is sampled, without and with drains toggled\n"
        "(default: 4, quick: 1)",
    )
    p.add_argument("--seed", type=int, default=12, help="seed of the pauses between changes")
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, short in (
        ("repeat_drains", 20, 5),
        ("repeat_failures", 20, 5),
        ("duration", 10.0, 2.0),
        ("repeat", 2, 1),
        ("quiet_wait", 20.0, 2.0),
        ("idle_sample", 4.0, 1.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    if min(args.repeat_drains, args.repeat_failures, args.repeat) < 1 or args.duration <= 0:
        p.error("repeats and --duration must be positive")
    args.logs = args.logs.absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    return run_bench("bench/fleet.py", parse_args(argv), bench)


def bench(args: argparse.Namespace, servers: list[Server]) -> int:
    for tool in ("etcd", "etcdctl", "dnsperf"):
        if not shutil.which(tool):
            raise BenchError(
                f"{tool} not found on PATH (Debian: apt install etcd-server etcd-client dnsperf)"
            )
    pinned = pinning().pinned
    machine = machine_info()
    del machine["nsd"]
    machine["etcd"] = _etcd_version()
    shutil.rmtree(args.logs, ignore_errors=True)
    args.logs.mkdir(parents=True)
    rng = random.Random(args.seed)
    started = time.monotonic()
    with running_fleet(args, servers) as (regions, cluster, fleet, poller):
        print(
            f"fleet up: etcd {', '.join(cluster.endpoints)}; {NODES} nodes; probe interval "
            f"{PROBE_INTERVAL:g} s, rise 1, fall 1, quorum majority",
            file=sys.stderr,
        )
        drains = measure_drains(fleet, poller, args.repeat_drains, rng)
        majority = measure_majority(regions, poller, args.repeat_failures, rng)
        node_commands = [shlex.join(n.server.argv) for n in fleet.nodes]
        throughput = measure_throughput(args, fleet, servers, pinned)
    report = {
        "machine": machine,
        "command": shlex.join([Path(sys.executable).name, "bench/fleet.py", *sys.argv[1:]]),
        "fleet": {
            "etcd_members": 3,
            "etcd_flags": "--heartbeat-interval 50 --election-timeout 500 (tests/etcd_cluster.py)",
            "nodes": NODES,
            "probe_interval_s": PROBE_INTERVAL,
            "rise": 1,
            "fall": 1,
            "probe_timeout_s": 0.3,
            "quorum": "majority",
            "poll_client": US,
            "node_commands": node_commands,
        },
        "drain": drains,
        "majority_down": majority,
        "throughput": throughput,
        "notes": [] if pinned else ["no pinning (needs taskset and CPUs 0 and 1)"],
        "logs": {s.name: s.log_lines() for s in servers if s.log_lines()},
        "wall_s": round(time.monotonic() - started, 1),
    }
    print_report(report)
    write_json(args.json, report)
    return 0


def _etcd_version() -> str:
    out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(":", 1)[1].strip() if first and ":" in first[0] else "unknown"


def _ms(s: dict) -> str:
    return " ".join(f"{1000 * s[k]:>7.0f}" for k in ("min", "median", "p95", "max"))


def print_report(report: dict) -> None:
    m, f = report["machine"], report["fleet"]
    print()
    print(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; Python "
        f"{m['python']}, etcd {m['etcd']}, dnsperf {m['dnsperf']}, geodns {m['geodns']}"
    )
    print(
        f"fleet: 3 etcd members and {f['nodes']} geodns nodes on loopback; regions probed "
        f"every {f['probe_interval_s']:g} s (rise {f['rise']}, fall {f['fall']}, timeout "
        f"{f['probe_timeout_s']:g} s), quorum {f['quorum']}; answers polled over UDP with "
        f"ECS {f['poll_client']}"
    )
    print(f"command: {report['command']}   (took {report['wall_s']:.0f} s)")
    print()
    header = (
        f"{'time to every node (ms)':<46} {'n':>3} {'min':>7} {'median':>7} {'p95':>7} {'max':>7}"
    )
    print(header)
    print("-" * len(header))
    d, b = report["drain"], report["majority_down"]
    rows = [
        ("(a) drain via node0: from sending the POST", d["from_post_s"]),
        ("(a) drain via node0: from the POST's reply", d["from_reply_s"]),
        ("    auto via node0: from its reply", d["auto_back_from_reply_s"]),
        (f"(b) {REGION} fails: from t0 (interval {b['probe_interval_s']:g} s)", b["down_s"]),
        ("    healthy again: from then", b["up_again_s"]),
    ]
    for label, s in rows:
        print(f"{label:<46} {s['n']:>3} {_ms(s)}")
    print()
    t = report["throughput"]
    print(
        f"(c) one node, 1 worker on core {t['pinning']['server']}, dnsperf on core "
        f"{t['pinning']['dnsperf']}: {t['queries']}; {t['duration_s']:g} s runs, "
        f"{t['repeat']} round(s), orders alternating; drains toggled every "
        f"{TOGGLE_EVERY:g} s through node0 in every run"
    )
    header = (
        f"{'store':<9} {'round':>5} {'qps':>9} {'mean ms':>8} {'lost':>5} {'us/q':>5} "
        f"{'cpu0%':>5} {'cpu1%':>5} {'bg%':>4} {'revs':>5} {'drains':>6} {'seen':>4} "
        f"{'after ms (med/max)':>18} {'idle%':>5} {'idle% t':>7}"
    )
    print(header)
    print("-" * len(header))
    for mode, r in t["results"].items():
        for run in r["runs"]:
            applied = run["store_revision_after"] - run["store_revision_before"]
            follow = run["drain_to_loaded_node_s"]
            after = f"{1000 * follow['median']:.0f} / {1000 * follow['max']:.0f}" if follow else "-"
            busy = run["core_busy_pct"]
            print(
                f"{mode:<9} {run['round']:>5} {run['qps']:>9,.0f} "
                f"{1000 * run['avg_latency_s']:>8.3f} {run.get('lost', 0):>5} "
                f"{run['server_cpu_us_per_query']:>5.1f} {busy.get(CLIENT_CPU, 0):>5.0f} "
                f"{busy.get(SERVER_CPU, 0):>5.0f} {run['background_busy_pct']:>4.0f} "
                f"{applied:>5} {run['drains']:>6} {run['drains_seen_at_loaded_node']:>4} "
                f"{after:>18} {run['idle_cpu_pct']:>5.1f} "
                f"{run['idle_cpu_pct_drains_toggled']:>7.1f}"
            )
    print(
        f"us/q: the loaded node's CPU time (user + system) per answered query; cpu0%/cpu1%: "
        f"busy share of core {CLIENT_CPU} (dnsperf) and core {SERVER_CPU} (the node) during "
        "the run; bg%: both cores' busy share just before it (the fleet's other processes, "
        "and anything else on the machine); revs: revisions of the loaded node's store during "
        "the run (embedded: its own writes; etcd: the fleet's, which it applied); drains: "
        f"drains set through node0 (each given back {TOGGLE_EVERY:g} s "
        f"later); seen: how many the loaded node's answers showed within {FOLLOW_WAIT:g} s "
        "(none with the embedded store: it is not in the fleet), and how long after the "
        "POST's reply; idle% / idle% t: the loaded node's CPU use (% of its core) before the "
        "load, without and with drains toggled"
    )
    means = {
        mode: {
            key: statistics.mean(run[key] for run in r["runs"])
            for key in ("qps", "server_cpu_us_per_query")
        }
        for mode, r in t["results"].items()
    }
    if "embedded" in means and "etcd" in means:
        e, x = means["embedded"], means["etcd"]
        print(
            f"etcd/embedded (means of the runs): qps {x['qps'] / e['qps']:.3f}, CPU per query "
            f"{x['server_cpu_us_per_query'] / e['server_cpu_us_per_query']:.3f}"
        )
    print(f"loaded node (etcd): {t['commands'].get('etcd')}")
    print(f"dnsperf (last run): {t['commands'].get('dnsperf')}")
    for r in t["results"].values():
        for run in r["runs"]:
            if run["drain_toggles_failed"]:
                print(f"WARNING: drain toggles failed: {run['drain_toggles_failed'][:3]}")
            if run["background_busy_pct"] >= QUIET_BUSY:
                print(
                    f"note: the machine was {run['background_busy_pct']:.0f}% busy just before "
                    f"a run (other work on it): that run's qps is disturbed; compare us/q"
                )
    for note in report["notes"]:
        print(f"note: {note}")
    print_logs(report["logs"])


if __name__ == "__main__":
    sys.exit(main())
