"""`geodns demo`: three simulated regions, the example zone checking them, and what to try."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from geodns.demo.region import SimulatedRegion, start_region

# (name, GPU utilization at start): all below the example's 0.75 low watermark.
REGIONS = (("us-east-1", 0.35), ("eu-west-1", 0.40), ("ap-northeast-1", 0.30))
VERSION = "42"
# Fast enough to watch: a failing region is down after `fall` probes, about 1.5 s.
INTERVAL = 0.5
TIMEOUT = 0.4
RISE = 2
FALL = 3
# Client subnets to try, and where the example zone sends each one.
TRIES = (
    ("81.2.69.0/24", "United Kingdom", "eu-west-1 (EU clients stay in the EU)"),
    ("216.160.83.0/24", "United States", "us-east-1"),
    ("202.214.5.0/24", "Japan", "ap-northeast-1"),
    ("200.160.2.0/24", "Brazil", "us-east-1, the nearest by latency"),
)
# The client network the printed load script reports its measurements for (a US one).
RUM_CLIENT = "216.160.83.0/24"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports free right now, for regions that start once the event loop runs."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def demo_zone_text(ports: dict[str, int], host: str = "127.0.0.1") -> str:
    """The shipped example zone, with each region's address, SRV port and health check
    pointing at its simulated endpoint, so that clients (geodns.client) can reach it."""
    text = (resources.files("geodns") / "example" / "example.com.yaml").read_text()
    service_health = (
        f"    health:                   # geodns demo: probe each simulated region\n"
        f"      interval: {INTERVAL}\n"
        f"      timeout: {TIMEOUT}\n"
        f"      rise: {RISE}\n"
        f"      fall: {FALL}\n"
        f"      require: [ready]\n"
    )
    anchor = "    regions:\n      us-east-1:\n"
    if anchor not in text:
        raise RuntimeError("the example zone changed shape: update geodns/demo/setup.py")
    text = text.replace(anchor, service_health + anchor, 1)
    for name, port in ports.items():
        block = re.compile(
            rf"(      {re.escape(name)}:\n(?:        .*\n)*?)        addresses: .*\n"
        )
        text, found = block.subn(
            lambda m, port=port: (
                f"{m.group(1)}        addresses: [{host}]   # the simulated region\n"
                f"        port: {port}\n"
                f'        health: {{url: "http://{host}:{port}/healthz"}}\n'
            ),
            text,
            count=1,
        )
        if not found:
            raise RuntimeError(f"no region {name} with addresses in the example zone")
    return "# Written by `geodns demo`.\n" + text


@dataclass
class DemoRegions:
    """The simulated regions, started before the first health-check round."""

    ports: dict[str, int]
    host: str = "127.0.0.1"
    regions: dict[str, SimulatedRegion] = field(default_factory=dict)

    async def start(self) -> None:
        for name, utilization in REGIONS:
            region = await start_region(name, self.host, self.ports[name])
            region.utilization = utilization
            region.version = VERSION
            self.regions[name] = region

    async def stop(self) -> None:
        for region in self.regions.values():
            with contextlib.suppress(Exception):
                await region.close()

    def set(
        self,
        region: str,
        mode: str | None = None,
        utilization: float | None = None,
        version: str | None = None,
        latency: float | None = None,
    ) -> dict[str, Any]:
        """Change one region as the dashboard asks; KeyError or ValueError when wrong."""
        target = self.regions[region]
        spec: dict[str, Any] = {}
        if mode is not None:
            spec["mode"] = mode
        if utilization is not None:
            if isinstance(utilization, bool) or not isinstance(utilization, int | float):
                raise ValueError(f"utilization {utilization!r} is not a number")
            if not 0 <= utilization <= 1:
                raise ValueError(f"utilization {utilization!r} is not 0..1")
            spec["utilization"] = utilization
        if version is not None:
            spec["version"] = str(version)
        if latency is not None:
            spec["latency"] = latency  # checked by configure()
        problem = target.configure(**spec)
        if problem:
            raise ValueError(problem)
        return target.settings()


@dataclass
class DemoBanner:
    """Prints what to try, once everything listens."""

    dns: Any  # ListenAddress
    admin_url: Callable[[], str] | None  # known once the admin side listens
    token: str
    zones_dir: Path
    regions: DemoRegions
    rum_token: str | None = None  # the RUM ingest's (POST /api/rum), when it is on

    async def start(self) -> None:
        print(self.text(), file=sys.stdout, flush=True)

    async def stop(self) -> None:
        return None

    def text(self) -> str:
        dig = f"dig @{self.dns.host} -p {self.dns.port}"
        admin_url = None if self.admin_url is None else self.admin_url()
        lines = [
            "",
            "geodns demo: three simulated GPU regions, health-checked every "
            f"{INTERVAL:g} s, and the DNS server in front of them.",
            "",
        ]
        if admin_url:
            lines.append(f"  dashboard  {admin_url}#token={self.token}")
        lines += [
            f"  DNS        {self.dns}   (zone files: {self.zones_dir})",
            f"  API token  {self.token}",
        ]
        for name, region in self.regions.regions.items():
            lines.append(f"  region     {name:<15} {region.url}  (GET /healthz)")
        lines += [
            "",
            "Ask as clients in different countries would (ECS). The simulated regions all live",
            "on 127.0.0.1, told apart by port: the SRV answer names them, best first.",
        ]
        for subnet, country, where in TRIES:
            lines.append(
                f"  {dig} _inference._tcp.example.com SRV +short +subnet={subnet}"
                f"   # {country}: {where}"
            )
        lines += [
            f"  {dig} inference.example.com +short +subnet=81.2.69.0/24"
            "   # the chosen region's address",
            f"  geodns explain inference.example.com 81.2.69.142 --zones {self.zones_dir}",
            "",
            "Send steady traffic through geodns.client, which fails over by itself (another",
            "terminal):",
            f"  python -m geodns.client.load --service inference.example.com"
            f" --dns {self.dns.host}:{self.dns.port} --duration 60",
            "",
        ]
        if admin_url and self.rum_token:
            lines += [
                "The same, reporting every request's latency as a client in the US would"
                " (measured latency, docs/rum.md):",
                f"  GEODNS_RUM_TOKEN={self.rum_token} python -m geodns.client.load"
                f" --service inference.example.com --dns {self.dns.host}:{self.dns.port}"
                f" --duration 120 --rum-url {admin_url.rstrip('/')}/api/rum"
                f" --rum-client {RUM_CLIENT}",
                "  then make us-east-1 slower for its clients (the dashboard's +250 ms):",
                f"  curl -X POST -H 'Authorization: Bearer {self.token}'"
                f""" -d '{{"latency": 0.25}}' {admin_url.rstrip("/")}/api/demo/regions/us-east-1""",
                "  once 5 slow samples are in, its clients in"
                f" {RUM_CLIENT} go to the region they measure fastest:",
                f"  {dig} inference.example.com +short +subnet={RUM_CLIENT}",
                "",
            ]
        lines += [
            "Fail a region (or use the dashboard's buttons), then ask again:",
        ]
        if admin_url:
            base = admin_url.rstrip("/")
            lines.append(
                f"  curl -X POST -H 'Authorization: Bearer {self.token}'"
                f""" -d '{{"mode": "failing"}}' {base}/api/demo/regions/us-east-1"""
            )
        lines += [
            f"  The US client moves to the next region after {FALL} failed checks "
            f"(about {FALL * INTERVAL:g} s); after {RISE} good ones it comes back.",
            "",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)
