"""RFC behaviour of answers, asked of the real server over UDP and TCP with dnspython."""

from __future__ import annotations

from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.conftest import ROOT, ServerProcess, running_server

TEST_ZONES = ROOT / "tests" / "data" / "zones"
Rcode = dns.rcode.Rcode


@pytest.fixture(scope="module")
def tserver() -> Iterator[ServerProcess]:
    with running_server(TEST_ZONES) as srv:
        yield srv


def q(name: str, rdtype: str = "A", **kw) -> dns.message.Message:
    kw.setdefault("use_edns", 0)
    return dns.message.make_query(name, rdtype, **kw)


def section_text(rrsets) -> set[str]:
    return {rr.to_text() for rrset in rrsets for rr in [rrset]}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_authoritative_answer_flags(server: ServerProcess, transport: str) -> None:
    query = q("www.example.com")
    query.flags |= dns.flags.RD
    reply = getattr(server, transport)(query)
    assert reply.rcode() == Rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert reply.flags & dns.flags.QR
    assert not reply.flags & dns.flags.RA
    assert reply.flags & dns.flags.RD  # copied
    assert {r.address for r in reply.answer[0]} == {"192.0.2.80", "192.0.2.81"}
    assert reply.answer[0].ttl == 300


def test_rd_clear_is_copied(server: ServerProcess) -> None:
    query = q("www.example.com")
    query.flags &= ~dns.flags.RD
    reply = server.udp(query)
    assert not reply.flags & dns.flags.RD


def test_qname_case_is_preserved(server: ServerProcess) -> None:
    reply = server.udp(q("wWw.ExAmPlE.CoM"))
    assert reply.question[0].name.to_text() == "wWw.ExAmPlE.CoM."
    assert reply.answer[0].name.to_text() == "wWw.ExAmPlE.CoM."
    # The same name in another case is not served the first case from a cache.
    reply = server.udp(q("WWW.example.com"))
    assert reply.question[0].name.to_text() == "WWW.example.com."


def test_ipv6_listener(server: ServerProcess) -> None:
    reply = server.udp(q("www.example.com", "AAAA"), host="::1")
    assert [r.address for r in reply.answer[0]] == ["2001:db8::80"]


def test_nxdomain_has_soa_with_negative_ttl(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("nosuch.test.example"))
    assert reply.rcode() == Rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA
    assert not reply.answer
    (soa,) = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name == dns.name.from_text("test.example")
    assert soa.ttl == 120  # min(SOA TTL 600, MINIMUM 120), RFC 2308


def test_negative_ttl_is_soa_ttl_when_lower(server: ServerProcess) -> None:
    reply = server.udp(q("nosuch.example.com"))
    assert reply.authority[0].ttl == 60


def test_nodata_has_soa(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("host.test.example", "AAAA"))
    assert reply.rcode() == Rcode.NOERROR
    assert not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize("name", ["b.c.test.example", "c.test.example"])
def test_empty_non_terminal_is_nodata(tserver: ServerProcess, name: str) -> None:
    reply = tserver.udp(q(name))
    assert reply.rcode() == Rcode.NOERROR
    assert not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_below_a_nonexistent_name_is_nxdomain(tserver: ServerProcess) -> None:
    assert tserver.udp(q("x.nosuch.test.example")).rcode() == Rcode.NXDOMAIN


@pytest.mark.parametrize("name", ["example.org", "com", ".", "example.com.evil"])
def test_names_outside_our_zones_are_refused(server: ServerProcess, name: str) -> None:
    reply = server.udp(q(name))
    assert reply.rcode() == Rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert not reply.answer and not reply.authority


def test_cname_is_chased_inside_the_zone(server: ServerProcess) -> None:
    reply = server.udp(q("api.example.com"))
    assert reply.rcode() == Rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert reply.answer[1].name == dns.name.from_text("www.example.com")


def test_cname_chain(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("chain1.test.example"))
    names = [r.name.to_text() for r in reply.answer]
    assert names == ["chain1.test.example.", "chain2.test.example.", "host.test.example."]


def test_cname_is_chased_into_another_zone_we_serve(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("to-other.test.example"))
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert reply.answer[1][0].address == "198.51.100.7"


def test_cname_dead_end_is_nxdomain_with_target_soa(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("to-nowhere.test.example"))
    assert reply.rcode() == Rcode.NXDOMAIN  # RFC 6604: the rcode of the last name
    assert reply.answer[0].rdtype == dns.rdatatype.CNAME
    assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_cname_to_a_zone_we_do_not_serve_stops(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("to-outside.test.example"))
    assert reply.rcode() == Rcode.NOERROR
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME]
    assert not reply.authority


def test_cname_loop_terminates(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("loop1.test.example"))
    assert reply.rcode() == Rcode.NOERROR
    assert len(reply.answer) == 2


def test_cname_query_type_gets_the_cname_itself(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("chain1.test.example", "CNAME"))
    assert len(reply.answer) == 1 and reply.answer[0].rdtype == dns.rdatatype.CNAME


@pytest.mark.parametrize("name", ["deleg.test.example", "www.deleg.test.example"])
def test_referral_at_and_below_a_delegation(tserver: ServerProcess, name: str) -> None:
    reply = tserver.udp(q(name))
    assert reply.rcode() == Rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert not reply.answer
    (ns,) = reply.authority
    assert ns.rdtype == dns.rdatatype.NS
    assert ns.name == dns.name.from_text("deleg.test.example")
    glue = {(r.name.to_text(), r[0].address) for r in reply.additional}
    assert glue == {("ns.deleg.test.example.", "192.0.2.53")}


def test_ds_at_a_delegation_is_answered_by_the_parent(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("deleg.test.example", "DS"))
    assert reply.flags & dns.flags.AA
    assert reply.answer[0].rdtype == dns.rdatatype.DS


def test_glue_for_apex_ns_and_mx(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("test.example", "NS"))
    assert {r.target.to_text() for r in reply.answer[0]} == {
        "ns1.test.example.",
        "ns2.elsewhere.example.",
    }
    additional = {(r.name.to_text(), r.rdtype) for r in reply.additional}
    assert additional == {
        ("ns1.test.example.", dns.rdatatype.A),
        ("ns1.test.example.", dns.rdatatype.AAAA),
    }
    reply = tserver.udp(q("test.example", "MX"))
    assert {(r.name.to_text(), r[0].address) for r in reply.additional} == {
        ("mx1.test.example.", "192.0.2.25")
    }


def test_wildcard_synthesis(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("anything.wild.test.example"))
    assert reply.answer[0].name.to_text() == "anything.wild.test.example."
    assert reply.answer[0][0].address == "192.0.2.4"
    reply = tserver.udp(q("anything.wild.test.example", "MX"))
    assert reply.rcode() == Rcode.NOERROR and not reply.answer


def test_generic_and_other_types(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("generic.test.example", "TYPE65534"))
    assert reply.answer[0][0].to_text() == "\\# 4 0a000001"
    reply = tserver.udp(q("sshfp.test.example", "SSHFP"))
    assert reply.answer[0][0].algorithm == 1


def test_long_txt_is_split_into_255_byte_strings(tserver: ServerProcess) -> None:
    reply = tserver.tcp(q("huge.test.example", "TXT"))
    (rdata,) = reply.answer[0]
    assert all(len(s) <= 255 for s in rdata.strings)
    assert b"".join(rdata.strings) == b"x" * 1500


def test_any_is_answered_minimally(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("host.test.example", "ANY"))
    assert reply.rcode() == Rcode.NOERROR
    assert len(reply.answer) == 1  # RFC 8482: one RRset, not all


# --- EDNS ---------------------------------------------------------------------------


def test_no_opt_in_reply_without_opt_in_query(server: ServerProcess) -> None:
    reply = server.udp(q("www.example.com", use_edns=False))
    assert reply.edns == -1
    reply = server.udp(q("www.example.com", use_edns=0))
    assert reply.edns == 0
    assert reply.payload == 1232


def test_badvers(server: ServerProcess) -> None:
    reply = server.udp(q("www.example.com", use_edns=1))
    assert reply.rcode() == Rcode.BADVERS
    assert reply.edns == 0
    assert not reply.answer


def test_do_bit_is_copied_and_unknown_flags_are_not(server: ServerProcess) -> None:
    reply = server.udp(q("www.example.com", want_dnssec=True))
    assert reply.ednsflags & dns.flags.DO
    reply = server.udp(q("www.example.com", ednsflags=0x4000))  # an unassigned flag
    assert reply.ednsflags == 0


def test_unknown_options_are_ignored_and_not_echoed(server: ServerProcess) -> None:
    option = dns.edns.GenericOption(65001, b"hello")
    reply = server.udp(q("www.example.com", options=[option]))
    assert reply.rcode() == Rcode.NOERROR
    assert not reply.options


def test_nsid(server: ServerProcess) -> None:
    reply = server.udp(q("www.example.com", options=[dns.edns.NSIDOption(b"")]))
    (opt,) = reply.options
    assert opt.otype == dns.edns.NSID
    assert opt.nsid == b"test-ns1"
    # Not asked, not given.
    assert not server.udp(q("www.example.com")).options


def test_ecs_is_echoed_with_scope_zero(server: ServerProcess) -> None:
    ecs = dns.edns.ECSOption("81.2.69.0", 24)
    reply = server.udp(q("www.example.com", options=[ecs]))
    (opt,) = reply.options
    assert isinstance(opt, dns.edns.ECSOption)
    assert (opt.address, opt.srclen, opt.scopelen) == ("81.2.69.0", 24, 0)
    ecs6 = dns.edns.ECSOption("2001:db8::", 32)
    (opt,) = server.udp(q("www.example.com", options=[ecs6])).options
    assert (opt.address, opt.srclen, opt.scopelen) == ("2001:db8::", 32, 0)


def test_class_other_than_in_is_refused(server: ServerProcess) -> None:
    for rdclass in (dns.rdataclass.HS, dns.rdataclass.CH):
        reply = server.udp(q("www.example.com", "A", rdclass=rdclass))
        assert reply.rcode() == Rcode.REFUSED


@pytest.mark.parametrize("name", ["id.server", "hostname.bind", "ID.SERVER"])
def test_chaos_id_server(server: ServerProcess, name: str) -> None:
    reply = server.udp(q(name, "TXT", rdclass=dns.rdataclass.CH))
    assert reply.rcode() == Rcode.NOERROR
    assert reply.answer[0].rdclass == dns.rdataclass.CH
    assert reply.answer[0][0].strings == (b"test-ns1",)


def test_chaos_version(server: ServerProcess) -> None:
    reply = server.udp(q("version.bind", "TXT", rdclass=dns.rdataclass.CH))
    assert reply.answer[0][0].strings[0].startswith(b"geodns ")


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_zone_transfers_are_refused(server: ServerProcess, rdtype: str, transport: str) -> None:
    reply = getattr(server, transport)(q("example.com", rdtype))
    assert reply.rcode() == Rcode.REFUSED


# --- size and truncation ------------------------------------------------------------------


def test_truncation_without_edns_at_512(tserver: ServerProcess) -> None:
    query = q("big.test.example", "TXT", use_edns=False)
    reply = tserver.udp(query)
    assert reply.flags & dns.flags.TC
    assert not reply.answer
    assert reply.question[0].name == dns.name.from_text("big.test.example")
    whole = tserver.tcp(query)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 3


def test_edns_payload_allows_a_bigger_udp_answer(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("big.test.example", "TXT", payload=1232))
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 3


def test_payload_below_512_counts_as_512(tserver: ServerProcess) -> None:
    reply = tserver.udp(q("host.test.example", "A", payload=100))
    assert not reply.flags & dns.flags.TC
    assert reply.answer


def test_answer_bigger_than_our_udp_size_is_truncated(tserver: ServerProcess) -> None:
    query = q("huge.test.example", "TXT", payload=4096)
    reply = tserver.udp(query)
    assert reply.flags & dns.flags.TC  # 1500 bytes of TXT > our 1232
    assert reply.edns == 0
    assert tserver.tcp(query).answer
