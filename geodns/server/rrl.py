"""Response rate limiting (RRL) for UDP replies: per client network and response class.

A DNS server answering UDP is an amplifier for anyone who can forge a source address:
a 50-byte query buys a 350-byte reply sent to the victim. RRL, as NSD, Knot and BIND do
it, counts the replies each client network gets per second in each response class; past
the limit, every `slip`-th reply is sent as a bare truncated one (TC=1, the question
only) so that a real client behind that network retries over TCP (which proves its
address), and the rest are dropped.

The classes follow NSD (rrl.c): a positive answer is counted by its qname and qtype;
NXDOMAIN and NODATA by the zone (the owner of the SOA in the reply's authority section),
and a referral by the delegation point (the owner of the NS RRset there), so that a
flood of random subdomains is one bucket however many names it invents; every other
rcode is one "error" class per network. A query carrying ECS is counted under (source
network, ECS subnet): one big resolver's many clients are many buckets, not one. The
price: a spoofer can vary ECS to spread its flood over more buckets; each bucket still
holds it to `rate` per second per subnet it names, and the TC reply it may get is as
small as the query (see docs/rrl.md).

Counting is per one-second window (NSD's granularity) and per worker process: the table
is a dict dropped at every new second, and dropped early when it reaches `table_size`
entries, so a flood of random sources costs a bounded amount of memory (losing counts
only ever lets a few more replies through, never fewer).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from geodns.errors import GeodnsError
from geodns.server.stats import QueryStats

DEFAULT_RATE = 200  # NSD's default rrl-ratelimit, replies per second per bucket
DEFAULT_SLIP = 2  # NSD's (and BIND's): half the limited replies go out truncated
DEFAULT_IPV4_PREFIX = 24  # NSD, Knot and BIND all group IPv4 clients by /24
DEFAULT_IPV6_PREFIX = 56  # Knot (<= 3.3) and BIND: a home or small site gets a /56
DEFAULT_TABLE_SIZE = 100_000  # buckets per worker and second before the table is dropped

_OPT = 41
_OPT_ECS = 8
_SOA = 6
_NS = 2

# Class tags: the first byte of a bucket's class key.
_POSITIVE = b"P"
_NXDOMAIN = b"X"
_NODATA = b"D"
_REFERRAL = b"R"
_ERROR = b"E"
ERROR_CLASS = _ERROR


class Action(IntEnum):
    """What to do with a reply."""

    SEND = 0  # under the limit (or exempt): send it as it is
    SLIP = 1  # over the limit, the slip-th one: send `truncated_untrusted()` instead
    DROP = 2  # over the limit: send nothing


@dataclass(frozen=True, slots=True)
class RRLConfig:
    """`geodns serve --rrl-*`: the limits one worker applies to its UDP replies."""

    rate: int = DEFAULT_RATE  # replies per second per bucket; 0 turns RRL off
    slip: int = DEFAULT_SLIP  # 0: drop every limited reply; 1: truncate every one
    ipv4_prefix: int = DEFAULT_IPV4_PREFIX
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX
    exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    table_size: int = DEFAULT_TABLE_SIZE

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise GeodnsError("--rrl-rate must be 0 (off) or more")
        if self.slip < 0:
            raise GeodnsError("--rrl-slip must be 0 or more")
        if not 0 <= self.ipv4_prefix <= 32:
            raise GeodnsError("--rrl-ipv4-prefix must be between 0 and 32")
        if not 0 <= self.ipv6_prefix <= 128:
            raise GeodnsError("--rrl-ipv6-prefix must be between 0 and 128")
        if self.table_size < 1:
            raise GeodnsError("the RRL table size must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.rate > 0


def parse_exempt(texts: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`--rrl-exempt` values: CIDR networks or single addresses."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise GeodnsError(f"--rrl-exempt {text!r}: not an address or network") from None
    return tuple(networks)


SEND = Action.SEND

# (query, peer address) -> True when the query proves its source address (a valid
# server cookie, RFC 7873 5.3.2), which exempts it from the limit as Knot does.
Exemption = Callable[[bytes, tuple], bool]


class ResponseRateLimiter:
    """One worker's RRL table. `check()` is called once per UDP reply, on the hot path."""

    def __init__(
        self,
        config: RRLConfig,
        exempt: Exemption | None = None,
        stats: QueryStats | None = None,
    ) -> None:
        self.config = config
        self.rate = config.rate
        self.slip = config.slip
        self._exempt_check = exempt
        self._v4_shift = 32 - config.ipv4_prefix
        self._v6_shift = 128 - config.ipv6_prefix
        self._ecs_v4_bytes = (config.ipv4_prefix + 7) // 8
        self._ecs_v6_bytes = (config.ipv6_prefix + 7) // 8
        self._table_size = config.table_size
        # Per-second state: the window's start, the bucket counts, sources' networks.
        self._second = -1
        self._counts: dict[tuple, int] = {}
        self._networks: dict[str, object] = {}
        self._exempt_hosts: dict[str, bool] = {}
        self._classes: dict[bytes, tuple[bytes, bytes]] = {}  # query[2:] -> (header, class)
        # Where the slipped and dropped replies are counted (the worker's, for /metrics).
        self.stats = stats if stats is not None else QueryStats()

    def check(self, query: bytes, reply: bytes, addr: tuple, now: float) -> Action:
        """What to do with `reply` to `query` from `addr` at monotonic time `now`."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._counts = {}
        host = addr[0]
        network = self._networks.get(host)
        if network is None:
            if len(self._networks) >= self._table_size:
                self._networks = {}
                self._exempt_hosts = {}
            network = self._networks[host] = self._network(host)
        # The class of the same query (ID aside) with the same reply header is the same:
        # a flood repeats one query, and a dict lookup is cheaper than reading it again.
        question = query[2:]
        known = self._classes.get(question)
        if known is not None and known[0] == reply[2:12]:
            cls = known[1]
        else:
            cls = classify_untrusted(query, reply, self._ecs_v4_bytes, self._ecs_v6_bytes)
            if len(self._classes) >= self._table_size:
                self._classes = {}
            self._classes[question] = (reply[2:12], cls)
        key = (network, cls)
        counts = self._counts
        n = counts.get(key, 0) + 1
        if n == 1 and len(counts) >= self._table_size:
            # A table full of one second's random sources: start it again rather than
            # grow it (the counts lost let a few more replies through, never fewer).
            self._counts = counts = {}
        counts[key] = n
        if n <= self.rate:
            return SEND
        # Over the limit: only now pay for the exemption checks.
        if self._is_exempt(query, addr):
            return Action.SEND
        if self.slip and (n - self.rate) % self.slip == 0:
            self.stats.rrl_slipped += 1
            return Action.SLIP
        self.stats.rrl_dropped += 1
        return Action.DROP

    def _network(self, host: str) -> object:
        """The client network a source address is counted under, as a hashable value."""
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return host  # not an IP address (a test's fake peer): counted alone
        if address.version == 4:
            return int(address) >> self._v4_shift
        mapped = address.ipv4_mapped
        if mapped is not None:
            return int(mapped) >> self._v4_shift
        return (6, int(address) >> self._v6_shift)

    def _is_exempt(self, query: bytes, addr: tuple) -> bool:
        host = addr[0]
        listed = self._exempt_hosts.get(host)
        if listed is None:
            listed = self._exempt_hosts[host] = self._listed(host)
        if listed:
            return True
        if self._exempt_check is not None:
            try:
                return bool(self._exempt_check(query, addr))
            except Exception:  # an exemption that fails proves nothing
                return False
        return False

    def _listed(self, host: str) -> bool:
        if not self.config.exempt:
            return False
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return any(
            address in net or (mapped is not None and mapped in net) for net in self.config.exempt
        )


def _name_end_untrusted(data: bytes, offset: int) -> int:
    """The offset just past the name at `offset` (ending in a root label or a pointer),
    or -1 when it runs off the end or is not a name. Never raises."""
    end = len(data)
    while offset < end:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length >= 0xC0:
            return offset + 2 if offset + 2 <= end else -1
        if length > 63:
            return -1
        offset += 1 + length
    return -1


def _ecs_untrusted(query: bytes, at: int, v4_bytes: int, v6_bytes: int) -> bytes:
    """The ECS subnet of the OPT record at `at` (family and address cut to the RRL
    prefix, so that a resolver varying the host bits within one network is one bucket),
    or b"" for none. Never raises."""
    if query[at : at + 3] != b"\x00\x00\x29":  # root owner, type OPT
        return b""
    rdlen = (query[at + 9] << 8) | query[at + 10] if len(query) >= at + 11 else 0
    offset = at + 11
    end = min(offset + rdlen, len(query))
    while offset + 4 <= end:
        code = (query[offset] << 8) | query[offset + 1]
        length = (query[offset + 2] << 8) | query[offset + 3]
        offset += 4
        if code == _OPT_ECS:
            body = query[offset : min(offset + length, end)]
            if len(body) < 4:
                return b""
            address = body[4 : 4 + (v4_bytes if body[1] == 1 else v6_bytes)]
            # family, length, then the address bytes the RRL prefix covers (the scope
            # byte and host bits ignored); a family byte is never a class tag's letter
            return bytes((body[1], len(address))) + address
        offset += length
    return b""


def classify_untrusted(query: bytes, reply: bytes, v4_bytes: int = 3, v6_bytes: int = 7) -> bytes:
    """The bucket class of a reply, read from the query's and the reply's bytes: the ECS
    subnet when the query has one, then a tag and the name (and qtype) it is counted by.
    Garbage never raises: whatever cannot be read is the error class."""
    try:
        if len(reply) < 12 or len(query) < 12:
            return _ERROR
        # The question name ends at its root label (labels are at most 63 bytes, so a
        # letter is never a length byte and lower() folds case only).
        qend = query.find(b"\x00", 12) + 1
        if qend <= 12 or qend + 4 > len(query) or query[5] != 1 or query[4]:
            return _ERROR
        # Options to read only past an empty OPT record (11 bytes after the question).
        if (query[11] or query[10]) and len(query) > qend + 15:
            ecs = _ecs_untrusted(query, qend + 4, v4_bytes, v6_bytes)
            if ecs:
                return ecs + _class_untrusted(query, reply, qend)
        return _class_untrusted(query, reply, qend)
    except IndexError:
        return _ERROR


def _class_untrusted(query: bytes, reply: bytes, qend: int) -> bytes:
    rcode = reply[3] & 0x0F
    if rcode == 0:
        if reply[6] or reply[7]:  # answers: counted by the question itself
            return _POSITIVE + query[12:qend].lower() + query[qend : qend + 2]
        if not (reply[8] or reply[9]):
            return _NODATA  # no authority at all: one bucket per network
        # The first authority record follows the question (there are no answers).
        at = qend + 4
        owner_end = _name_end_untrusted(reply, at)
        if owner_end < 0 or owner_end + 2 > len(reply):
            return _ERROR
        rrtype = (reply[owner_end] << 8) | reply[owner_end + 1]
        tag = _NODATA if rrtype == _SOA else _REFERRAL if rrtype == _NS else _ERROR
        return tag + _owner_untrusted(reply, at, owner_end, qend)
    if rcode == 3:
        if not (reply[8] or reply[9]):
            return _NXDOMAIN
        at = qend + 4
        owner_end = _name_end_untrusted(reply, at)
        if owner_end < 0:
            return _NXDOMAIN
        return _NXDOMAIN + _owner_untrusted(reply, at, owner_end, qend)
    return _ERROR


def _owner_untrusted(reply: bytes, at: int, end: int, qend: int) -> bytes:
    """The owner name at reply[at:end] as lower-case bytes, following a pointer into the
    question (where geodns and most servers point it)."""
    if end - at == 2 and reply[at] >= 0xC0:
        target = ((reply[at] & 0x3F) << 8) | reply[at + 1]
        if 12 <= target < qend:
            return reply[target:qend].lower()
    return reply[at:end].lower()


def truncated_untrusted(query: bytes, reply: bytes, udp_size: int = 1232) -> bytes | None:
    """The slip reply: `reply`'s header with TC=1, its question only, and a bare OPT
    when the query had one (RFC 6891 7: an EDNS query gets OPT in every reply); the
    header alone when the reply has no readable question."""
    qend = reply.find(b"\x00", 12) + 1
    if len(query) < 12 or qend <= 12 or qend + 4 > len(reply) or reply[5] != 1 or reply[4]:
        if len(reply) < 12:
            return None
        return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + bytes(8)
    at = query.find(b"\x00", 12) + 5  # the query's first record after its question
    opt = b""
    if at > 16 and (query[10] or query[11]) and query[at : at + 3] == b"\x00\x00\x29":
        # OPT: owner, type, class (payload), TTL (ext-rcode, version, DO bit + flags), rdlen
        do = query[at + 7] & 0x80 if len(query) >= at + 11 else 0
        opt = b"\x00\x00\x29" + udp_size.to_bytes(2, "big") + bytes((0, 0, do, 0, 0, 0))
    header = (
        reply[:2]
        + bytes((reply[2] | 0x02, reply[3]))  # TC (RFC 1035 4.1.1)
        + b"\x00\x01\x00\x00\x00\x00"
        + (b"\x00\x01" if opt else b"\x00\x00")
    )
    return header + reply[12 : qend + 4] + opt
