"""A fleet on one machine for tests: geodns nodes on loopback sharing one etcd, checking the
same simulated regions, each node with its own zone copy so that a test can cut one node's
path to a region (its health URL points at a closed port) while the others see it fine."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ServerProcess, running_server
from tests.e2e.test_admin import TOKEN, http
from tests.e2e.test_rolling_update import ADDRESSES, NAMES, PLACES, ask

__all__ = ["NAMES", "TOKEN", "Fleet", "ask", "closed_port", "fleet_zone", "http", "running_fleet"]


def closed_port() -> int:
    """A loopback port nothing listens on: a probe of it fails at once (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet_zone(ports: dict[str, int], interval: float = 0.5, quorum: str = "majority") -> str:
    regions = "".join(
        f"""\
      {name}:
        addresses: [{ADDRESSES[name]}]
        location: {{lat: {PLACES[name][0]}, lon: {PLACES[name][1]}}}
        health: {{url: "http://127.0.0.1:{port}/healthz"}}
"""
        for name, port in ports.items()
    )
    return f"""\
zone: example.com
soa: {{mname: ns1, rname: hostmaster, serial: 1}}
ns: [ns1]
records: {{ns1: {{A: 192.0.2.53}}}}
services:
  inference:
    ttl: 1
    quorum: {quorum}
    health: {{interval: {interval}, timeout: 0.3, rise: 1, fall: 1}}
    regions:
{regions}"""


@dataclass
class Fleet:
    nodes: list[ServerProcess]
    zones: list[Path]
    states: list[Path]
    store: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    args: tuple[str, ...] = ()

    def start(self, i: int) -> ServerProcess:
        """Start node i (again): the same name, zones and state directory."""
        node = self.stack.enter_context(
            running_server(
                self.zones[i],
                "--store",
                self.store,
                "--node-name",
                f"node{i}",
                "--state-dir",
                str(self.states[i]),
                "--watch-interval",
                "0",
                "--rrl-rate",
                "0",
                *self.args,
                listen=("127.0.0.1:0",),
                env={"GEODNS_ADMIN_TOKEN": TOKEN},
            )
        )
        if i < len(self.nodes):
            self.nodes[i] = node
        else:
            self.nodes.append(node)
        return node

    def kill(self, i: int) -> None:
        """kill -9 node i: no goodbye, its lease runs out by itself."""
        self.nodes[i].proc.kill()
        self.nodes[i].proc.wait()


@contextlib.contextmanager
def running_fleet(
    tmp: Path, store: str, zones: list[str], args: tuple[str, ...] = ()
) -> Iterator[Fleet]:
    """One node per zone text, node0..nodeN-1, on `store`."""
    fleet = Fleet([], [], [], store, args=args)
    for i, text in enumerate(zones):
        directory = tmp / f"node{i}"
        (directory / "zones").mkdir(parents=True)
        (directory / "zones" / "example.com.yaml").write_text(text)
        fleet.zones.append(directory / "zones")
        fleet.states.append(directory / "state")
    with fleet.stack:
        for i in range(len(zones)):
            fleet.start(i)
        yield fleet
