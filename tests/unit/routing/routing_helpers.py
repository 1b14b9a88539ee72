"""Literal clients, services and states for the routing tests."""

from __future__ import annotations

import ipaddress

from geodns.geo.geoip import GeoRecord
from geodns.geo.locate import Client
from geodns.health.state import Health, RegionState, StateSnapshot
from geodns.zones.loader import load_zones
from tests.conftest import ROOT

(ZONE,) = load_zones([ROOT / "zones"]).zones.values()
(SERVICE,) = ZONE.services.values()
KEY = SERVICE.key

PLACES = {
    "GB": ("EU", 51.5, -0.13),
    "DE": ("EU", 52.5, 13.4),
    "US": ("NA", 47.6, -122.3),
    "BR": ("SA", -23.5, -46.6),
    "JP": ("AS", 35.7, 139.7),
    "AU": ("OC", -33.9, 151.2),
    "ZA": ("AF", -26.2, 28.0),
}


def client(country: str | None, network: str = "198.51.100.0/24") -> Client:
    net = ipaddress.ip_network(network)
    if country is None:
        return Client(net.network_address, None, net, None)
    continent, lat, lon = PLACES[country]
    return Client(net.network_address, None, net, GeoRecord(country, continent, None, lat, lon))


def state(**regions: RegionState) -> StateSnapshot:
    snap = StateSnapshot()
    for name, region_state in regions.items():
        snap = snap.with_region(KEY, name.replace("_", "-"), region_state)
    return snap


DOWN = RegionState(Health.DOWN)
DRAIN = RegionState(Health.DRAIN)


def busy(u: float) -> RegionState:
    return RegionState(Health.UP, u)
