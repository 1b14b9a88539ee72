"""TSIG (RFC 8945) far enough to refuse it right: read a query's TSIG RR, build the error RR.

geodns holds no TSIG keys, so every signed query is answered NOTAUTH with a TSIG RR whose
error is BADKEY (RFC 8945 5.2.2, 5.3.2): the request's key name, algorithm, time signed and
fudge, an empty MAC, the request's original ID, and no signature.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from geodns.errors import BadTSIG

TYPE_TSIG = 250
CLASS_ANY = 255
BADKEY = 17  # RFC 8945 3: the key is not recognised
MAX_POINTERS = 64  # bounds compression-pointer chains in an owner name


@dataclass(frozen=True, slots=True)
class Tsig:
    """The fields of a request's TSIG RR that its error reply repeats."""

    key_name: bytes  # the owner name, uncompressed wire form, as sent
    algorithm: bytes  # uncompressed wire form (RFC 8945 4.2: never compressed)
    time_signed: int  # 48 bits, seconds since the epoch
    fudge: int
    original_id: int


def read_name_untrusted(data: bytes, offset: int) -> tuple[bytes, int]:
    """A (possibly compressed) name at `offset`: its uncompressed wire form and the offset
    just past it in the message. Pointers must point backwards, so chains end."""
    labels: list[bytes] = []
    size = 1
    end_offset = -1
    hops = 0
    while True:
        if offset >= len(data):
            raise BadTSIG("TSIG name runs past the packet")
        length = data[offset]
        if length >= 0xC0:
            if offset + 2 > len(data):
                raise BadTSIG("truncated compression pointer in a TSIG name")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if end_offset < 0:
                end_offset = offset + 2
            hops += 1
            if target >= offset or hops > MAX_POINTERS:
                raise BadTSIG("compression pointer in a TSIG name does not point back")
            offset = target
            continue
        if length > 63:
            raise BadTSIG("unknown label type in a TSIG name")
        if length == 0:
            return b"".join(labels) + b"\x00", end_offset if end_offset >= 0 else offset + 1
        label = data[offset : offset + 1 + length]
        if len(label) != 1 + length:
            raise BadTSIG("TSIG name runs past the packet")
        size += 1 + length
        if size > 255:
            raise BadTSIG("TSIG name longer than 255 octets")
        labels.append(label)
        offset += 1 + length


def parse_tsig_untrusted(key_name: bytes, rclass: int, ttl: int, rdata: bytes) -> Tsig:
    """Check a TSIG RR's class, TTL and RDATA layout (RFC 8945 4.2); BadTSIG if malformed."""
    if rclass != CLASS_ANY or ttl != 0:
        raise BadTSIG("TSIG record not of class ANY with TTL 0")
    offset = 0
    while True:  # the algorithm name, uncompressed
        if offset >= len(rdata):
            raise BadTSIG("TSIG algorithm name runs past the record")
        length = rdata[offset]
        if length > 63:
            raise BadTSIG("compressed or extended label in the TSIG algorithm name")
        offset += 1 + length
        if length == 0:
            break
    if offset > 255:
        raise BadTSIG("TSIG algorithm name longer than 255 octets")
    algorithm = rdata[:offset]
    if offset + 10 > len(rdata):
        raise BadTSIG("TSIG record shorter than its fixed fields")
    high, low, fudge, mac_size = struct.unpack_from("!HIHH", rdata, offset)
    offset += 10 + mac_size
    if offset + 6 > len(rdata):
        raise BadTSIG("TSIG MAC runs past the record")
    original_id, _error, other_len = struct.unpack_from("!HHH", rdata, offset)
    if offset + 6 + other_len != len(rdata):
        raise BadTSIG("TSIG other data does not end the record")
    return Tsig(bytes(key_name), bytes(algorithm), (high << 32) | low, fudge, original_id)


def tsig_error_rr(tsig: Tsig, error: int = BADKEY) -> bytes:
    """The unsigned TSIG RR of an error reply (RFC 8945 5.3.2): no MAC, no other data."""
    rdata = (
        tsig.algorithm
        + struct.pack("!HIH", tsig.time_signed >> 32, tsig.time_signed & 0xFFFFFFFF, tsig.fudge)
        + struct.pack("!HHHH", 0, tsig.original_id, error, 0)
    )
    return tsig.key_name + struct.pack("!HHIH", TYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata
