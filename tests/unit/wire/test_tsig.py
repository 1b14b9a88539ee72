"""The TSIG RR of an error reply (RFC 8945 5.3.2), checked with dnspython's reader."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.tsigkeyring

from geodns.wire.query import parse_query_untrusted
from geodns.wire.tsig import BADKEY, tsig_error_rr


def test_badkey_rr_repeats_the_request_and_has_no_mac() -> None:
    msg = dns.message.make_query("www.example.com", "A", use_edns=False)
    msg.id = 4242
    keyring = dns.tsigkeyring.from_text({"Some-Key.": "c2VjcmV0c2VjcmV0"})
    msg.use_tsig(keyring, "Some-Key.", fudge=600, algorithm="hmac-sha512")
    wire = msg.to_wire()
    query = parse_query_untrusted(wire)
    assert query.tsig is not None
    rr = tsig_error_rr(query.tsig)
    # Read it back as the additional record of a response.
    header = b"\x10\x92\x80\x09\x00\x00\x00\x00\x00\x00\x00\x01"
    reply = dns.message.from_wire(header + rr, keyring=False)
    assert reply.tsig is not None
    rdata = reply.tsig[0]
    assert reply.tsig.name == dns.name.from_text("Some-Key.")
    assert (reply.tsig.rdclass, reply.tsig.ttl) == (dns.rdataclass.ANY, 0)
    assert rdata.algorithm == dns.name.from_text("hmac-sha512.")
    assert rdata.time_signed == msg.tsig[0].time_signed
    assert (rdata.fudge, rdata.mac, rdata.original_id) == (600, b"", 4242)
    assert (rdata.error, rdata.other) == (BADKEY, b"")
    assert reply.tsig.rdtype == dns.rdatatype.TSIG
