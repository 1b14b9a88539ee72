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
from tests.e2e.test_rolling_update import NAMES, ask, zone_text

__all__ = ["NAMES", "TOKEN", "Fleet", "ask", "closed_port", "fleet_zone", "http", "running_fleet"]


def closed_port() -> int:
    """A loopback port nothing listens on: a probe of it fails at once (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet_zone(ports: dict[str, int], interval: float = 0.5, quorum: str = "majority") -> str:
    """The zone a node of the fleet serves: a fixed SOA serial (`auto` would follow each
    node's file time), health checked every `interval`, the service's `quorum`."""
    return zone_text(ports, interval=interval, timeout=0.3, service_keys=f"    quorum: {quorum}\n")


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
