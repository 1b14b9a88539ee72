#!/usr/bin/env python3
"""The event loop's own cost per datagram: the floor under geodns's CPU per query.

Starts an echo server made of nothing but what geodns's UDP listener is made of (uvloop,
an asyncio DatagramProtocol, one sendto per datagram: it flips the QR bit and sends the
query back), pinned to core 1, drives it with dnsperf pinned to core 0 at fixed rates and
saturated, and prints the server's CPU time (user + system, from /proc) per query. No
Python server can answer for less than this; what geodns spends above it is its own work.

    python bench/loopfloor.py                       # 5,000 and 20,000 q/s, then saturated
    python bench/loopfloor.py --rates 5000 --duration 5

At a low fixed rate most of it is waking up for each datagram (epoll, one receive that
finds a datagram and one that finds none, the send), which a saturated loop shares among
the datagrams one wakeup finds. Needs dnsperf and taskset.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import CLIENT_CPU, HOST, SERVER_CPU, free_port, parse_dnsperf, pin  # noqa: E402


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.transport.sendto(data[:2] + bytes((data[2] | 0x80,)) + data[3:], addr)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(HOST, port))
    await asyncio.Event().wait()


def serve(port: int) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_serve(port))


def serve_thread(port: int) -> None:
    """The same echo from a thread blocked in recvfrom, beside an idle uvloop loop: no
    readiness poll and no receive that finds nothing, two system calls a datagram."""
    import threading

    import uvloop

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, port))

    def run() -> None:
        recv, send = sock.recvfrom, sock.sendto
        while True:
            data, addr = recv(65535)
            send(data[:2] + bytes((data[2] | 0x80,)) + data[3:], addr)

    threading.Thread(target=run, daemon=True).start()
    uvloop.install()
    asyncio.run(asyncio.Event().wait())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=int, nargs="+", default=[5000, 20000])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument(
        "--thread",
        action="store_true",
        help="echo from a thread blocked in recvfrom instead of the event loop's callback",
    )
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the echo server itself
    args = p.parse_args(argv)
    if args.serve:
        (serve_thread if args.thread else serve)(args.serve)
        return 0
    for tool in ("dnsperf", "taskset"):
        if shutil.which(tool) is None:
            print(f"loopfloor: needs {tool}", file=sys.stderr)
            return 1
    port = free_port(set())
    server = subprocess.Popen(
        pin(
            SERVER_CPU,
            [
                sys.executable,
                __file__,
                "--serve",
                str(port),
                *(["--thread"] if args.thread else []),
            ],
        ),
        start_new_session=True,
    )
    kind = "a thread in recvfrom" if args.thread else "uvloop DatagramProtocol"
    print(
        f"echo server ({kind}) on core {SERVER_CPU}, dnsperf on core "
        f"{CLIENT_CPU}, {args.duration:g} s a run"
    )
    print(f"{'load':<22} {'qps':>10} {'lost':>6} {'server us/q':>12}")
    try:
        time.sleep(1.0)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
            queries.write("inference.example.com A\n")
            queries.flush()
            runs = [(f"{rate:,} q/s", ["-Q", str(rate)]) for rate in args.rates]
            runs.append(("saturated", ["-c", "10", "-q", "500", "-T", "2"]))
            for label, extra in runs:
                cmd = ["dnsperf", "-s", HOST, "-p", str(port), "-d", queries.name]
                cmd += ["-l", f"{args.duration:g}", *extra]
                before = cpu_seconds(server.pid)
                out = subprocess.run(
                    pin(CLIENT_CPU, cmd), capture_output=True, text=True, check=True
                ).stdout
                used = cpu_seconds(server.pid) - before
                result = parse_dnsperf(out)
                done = result.get("completed", 0)
                per = used / done * 1e6 if done else float("nan")
                print(
                    f"{label:<22} {result.get('qps', 0):>10,.0f} "
                    f"{result.get('lost', 0):>6} {per:>12.1f}"
                )
                time.sleep(0.5)
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
