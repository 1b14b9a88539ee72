"""The dashboard's shares of a country (admin.view.country_shares): the share of its client
networks that each region comes first for, as the routing's own hash of each network's
bucket decides it while a region sheds a share of its clients."""

from __future__ import annotations

import pytest

from geodns.admin.view import _SAMPLE_NETWORKS, country_shares
from geodns.health.state import Health, RegionState
from geodns.routing.context import stable_fraction
from tests.unit.routing.routing_helpers import KEY, SERVICE, state


def test_a_region_shedding_half_its_clients_keeps_the_other_half() -> None:
    low, high = SERVICE.capacity.low, SERVICE.capacity.high
    u = (low + high) / 2
    shares = country_shares(SERVICE, state(us_east_1=RegionState(utilization=u)), "US")
    shed = (u - low) / (high - low)
    kept = sum(
        stable_fraction(str(net), KEY, "us-east-1") >= shed for net in _SAMPLE_NETWORKS
    ) / len(_SAMPLE_NETWORKS)
    assert shares["us-east-1"] == pytest.approx(kept, abs=1e-4)
    assert 0.25 <= kept <= 0.75  # the samples are spread: about half
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) == {"us-east-1", "eu-west-1"}


def test_a_calm_country_goes_whole_to_one_region() -> None:
    assert country_shares(SERVICE, state(), "GB") == {"eu-west-1": 1.0}


def test_clients_that_get_no_region_are_named_by_the_empty_string() -> None:
    # The example's residency rule keeps EU clients in eu-west-1, failing closed without it.
    shares = country_shares(SERVICE, state(eu_west_1=RegionState(Health.DOWN)), "DE")
    assert shares == {"": 1.0}
