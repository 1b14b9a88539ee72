"""Whom a drain would strand: the residency rules left with no region in answers."""

from __future__ import annotations

from geodns.routing.residency import fail_closed_outcome, stranded_by_drain
from geodns.zones.model import FailClosed
from tests.unit.routing.routing_helpers import DOWN, DRAIN, SERVICE, state

# The example service: rule 0 keeps continent EU clients in eu-west-1 alone.


def test_draining_a_rules_last_region_strands_its_clients() -> None:
    (rule,) = stranded_by_drain(SERVICE, state(), "eu-west-1")
    assert (rule.index, rule.clients.description) == (0, "continent EU")


def test_other_regions_strand_no_one() -> None:
    assert stranded_by_drain(SERVICE, state(), "us-east-1") == ()
    assert stranded_by_drain(SERVICE, state(eu_west_1=DOWN), "us-east-1") == ()


def test_a_rule_already_without_a_region_is_not_this_drains_doing() -> None:
    assert stranded_by_drain(SERVICE, state(eu_west_1=DOWN), "eu-west-1") == ()
    assert stranded_by_drain(SERVICE, state(eu_west_1=DRAIN), "eu-west-1") == ()


def test_what_stranded_clients_get_in_words() -> None:
    assert fail_closed_outcome(FailClosed("refuse")) == "be refused (REFUSED)"
    assert fail_closed_outcome(FailClosed("nodata")) == "get no address (NODATA)"
    assert fail_closed_outcome(FailClosed("servfail")) == "get SERVFAIL"
    assert (
        fail_closed_outcome(FailClosed("answer", ("192.0.2.29",)))
        == "get the unavailable answer 192.0.2.29"
    )
