"""Answers for service names: locate the client, route, encode; cached per client network.

A decision depends on the client only through its GeoIP network (country, coordinates,
and the network's hash for capacity shedding), so decisions and their encoded answers
are cached per (service, name kind, network, qtype) and dropped with the state or config.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from geodns.geo.geoip import PURE_PYTHON_WARNING, GeoIPDatabase
from geodns.geo.latency import LatencyTable
from geodns.geo.locate import Client, is_special, locate, not_global_v6
from geodns.geo.overrides import AsnDatabase, Overrides
from geodns.geo.scopes import NO_WIDENING, Runs, ScopeRuns
from geodns.health.state import ALL_UP, StateSnapshot
from geodns.routing.classes import class_fingerprint
from geodns.routing.context import BUCKET_PREFIX, bucket_prefix
from geodns.routing.pipeline import Decision, route
from geodns.versions.serving import region_version
from geodns.zones.lookup import Resolution, negative, resolve
from geodns.zones.model import Service, Zone, ZoneSet, region_host, srv_name, version_label

log = logging.getLogger("geodns.geo")

RT = dns.rdatatype.RdataType
Rcode = dns.rcode.Rcode
CLASS_DECISIONS = 100_000  # decisions by class: classes x name kinds, far below this
BUCKET_DECISIONS = 8_192  # decisions by bucket, for classes a hash decides
SERVICE = "service"
SRV = "srv"
ALIAS = "alias"
VERSION = "version"  # v<version>.<service>: only regions serving that version
_OUTCOME_RCODE = {"refuse": Rcode.REFUSED, "servfail": Rcode.SERVFAIL}


@dataclass(frozen=True, slots=True)
class DynamicName:
    zone: Zone
    service: Service
    kind: str  # SERVICE (A, AAAA, TXT with debug) | SRV (_service._tcp) | ALIAS | VERSION
    # ALIAS: a static name whose CNAME chain ends at the service: its A/AAAA answers are
    # the chain plus the service's answer for this client, so residency holds through it.
    chain: tuple[dns.rrset.RRset, ...] = ()
    label: str | None = None  # VERSION: the version's label, "v43"
    # The name asked, lowercased wire: what the caches of decisions and answers key on,
    # since two aliases of one service share everything but their chain.
    qname: bytes = b""


@dataclass(frozen=True, slots=True)
class GeoResult:
    """A decision for one client network, and what its encoded answer depends on.

    Many networks share one answer (every UK network gets eu-west-1), so the answer is
    encoded once per `signature`, not once per network; None means "this client only"
    (the debug TXT, which names the client).
    """

    dynamic: DynamicName
    qtype: int
    decision: Decision
    scope_prefix: int
    signature: tuple[object, ...] | None


@dataclass(slots=True, eq=False)
class ClassAnswer:
    """The class path's answer for every client of one routing class (or of one bucket of
    it) under the current state; only the ECS scope is computed per query."""

    result: GeoResult  # the decision and its signature (scope_prefix unused)
    fixed_scope: int | None  # every reply's scope; None: the run's scope, at least `floor`
    floor: int
    unlocated_v6: bool  # an IPv6 address of it outside global space is the network path's
    by_bucket: bool  # a hash decides: look again by bucket, in the bucket answers
    # The Answerer's (encoded answer, count slot), filled on its first use: gone with this.
    reply: object = None


@dataclass(frozen=True, slots=True)
class _ClassTable:
    """One family's runs for a service, as the query path reads them."""

    runs: Runs
    reps: dict[int, Client]  # per class, one located client of it
    bucket_shift: int  # value >> bucket_shift: the client's bucket (/24, /56)
    # The service's client networks and ASNs: their addresses are not the class path's,
    # and they bound every scope it claims (geodns.geo.overrides).
    overrides: Overrides | None = None


_NO_TABLE: Any = object()


def dynamic_names(zones: ZoneSet) -> dict[bytes, DynamicName]:
    """Lowercased wire names answered per client, and what each one is."""
    out: dict[bytes, DynamicName] = {}
    for zone in zones.zones.values():
        for service in zone.services.values():
            for kind, name in ((SERVICE, service.name), (SRV, srv_name(service))):
                key = name.canonicalize().to_wire()
                out[key] = DynamicName(zone, service, kind, qname=key)
    for zone in zones.zones.values():
        for owner, node in zone.nodes.items():
            if RT.CNAME in node:
                alias = _alias(zones, owner)
                if alias is not None:
                    key = owner.canonicalize().to_wire()
                    out[key] = replace(alias, qname=key)
    return out


def _alias(zones: ZoneSet, owner: dns.name.Name) -> DynamicName | None:
    """A DynamicName for `owner` if its CNAME chain, chased as any lookup chases it,
    ends at a service name."""
    chain = tuple(r for r in resolve(zones, owner, RT.A).answer if r.rdtype == RT.CNAME)
    if not chain:
        return None
    target = chain[-1][0].target
    zone = zones.find(target)
    service = zone.services.get(target) if zone is not None else None
    return None if service is None else DynamicName(zone, service, ALIAS, chain)


def latency_for(service: Service) -> LatencyTable | None:
    if service.latency is None:
        return None
    if service.latency == "default":
        return LatencyTable.default()
    return LatencyTable.load(service.latency)


def overrides_for(service: Service) -> Overrides | None:
    """The overrides a service's residency rules and preferences name; None for none."""
    matches = [rule.clients for rule in service.residency]
    matches += [pref.clients for pref in service.prefer]
    networks = [net for m in matches for net in m.networks]
    asns = frozenset(n for m in matches for n in m.asns)
    if not networks and not asns:
        return None
    db = AsnDatabase.load(service.asn_database) if asns and service.asn_database else None
    return Overrides(networks, asns, db)


def client_address(
    ecs_family: int, ecs_address: bytes, source_prefix: int
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    size = 4 if ecs_family == 1 else 16
    raw = ecs_address + bytes(size - len(ecs_address))
    return ipaddress.IPv4Address(raw) if size == 4 else ipaddress.IPv6Address(raw)


class GeoAnswers:
    """Routing decisions for one ZoneSet, one state snapshot and one GeoIP database."""

    def __init__(
        self, zones: ZoneSet, state: StateSnapshot = ALL_UP, geoip: GeoIPDatabase | None = None
    ) -> None:
        self.names = dynamic_names(zones)
        self.state = state
        self.geoip = geoip
        self._latency: dict[str, LatencyTable | None] = {}
        self._overrides: dict[str, Overrides | None] = {}
        for dyn in self.names.values():
            if dyn.service.key not in self._latency:
                self._latency[dyn.service.key] = latency_for(dyn.service)
                self._overrides[dyn.service.key] = overrides_for(dyn.service)
        # Merged scopes (geodns.geo.scopes) per service key, for the GeoIP file _runs_key.
        self._runs: dict[str, ScopeRuns] = {}
        self._runs_key: str | None = None
        # The class path (class_answer): per family and service key, its runs as the query
        # path reads them; per (name, qtype, class, family), the ClassAnswer under this
        # state; per (..., bucket), a bounded few for classes whose decision a hash decides.
        self._tables: dict[int, dict[str, _ClassTable | None]] = {4: {}, 6: {}}
        self._class_answers: dict[tuple[object, ...], ClassAnswer] = {}
        self._bucket_answers: dict[tuple[object, ...], ClassAnswer] = {}

    def set_scopes(self, file_key: str, runs: dict[str, ScopeRuns]) -> None:
        """Runs by class fingerprint, built from the GeoIP file version `file_key`; they
        are used only while that version is the one open."""
        mine: dict[str, ScopeRuns] = {}
        for dyn in self.names.values():
            service = dyn.service
            if service.key not in mine:
                found = runs.get(class_fingerprint(service, self._latency[service.key]))
                if found is not None:
                    mine[service.key] = found
        self._runs, self._runs_key = mine, file_key
        self._tables = {4: {}, 6: {}}
        self.drop_class_decisions()
        # Built here rather than on the first query of each family, which would wait for
        # it (about 45 ms for the embedded database's IPv6 runs, once per file version).
        for dyn in self.names.values():
            for family in (4, 6):
                if dyn.service.key not in self._tables[family]:
                    self._class_table(dyn.service, family)

    def drop_class_decisions(self) -> None:
        """After a state change or a new database: decisions by class are stale."""
        self._class_answers.clear()
        self._bucket_answers.clear()
        if self.geoip is not None and self._runs_key != self.geoip.file_key:
            # A new database: these runs and classes are another file's (until set_scopes
            # brings its own, every query takes the network path).
            self._tables = {4: {}, 6: {}}

    def by_class(
        self, dyn: DynamicName, qtype: int, value: int, family: int, source_prefix: int
    ) -> GeoResult | None:
        """The GeoResult `resolve(dyn, qtype, locate(address, source_prefix))` gives, for the
        ECS address `value` of `family` (4 or 6), from the merged runs alone (class_answer).
        None where the runs cannot say, and for ECS /0 (the resolver's address decides)."""
        if source_prefix == 0:
            return None
        found = self.class_answer(dyn, qtype, value, family)
        if found is None:
            return None
        answer, scope = found
        result = answer.result
        return GeoResult(dyn, qtype, result.decision, scope, result.signature)

    def class_answer(
        self, dyn: DynamicName, qtype: int, value: int, family: int
    ) -> tuple[ClassAnswer, int] | None:
        """The class path: the ClassAnswer for the ECS address `value` of `family` (4 or 6,
        source prefix > 0) and the ECS scope of its reply, from one binary search in the
        merged runs; the decision is computed once per class (per bucket where a hash
        decides) and state, with no GeoIP lookup and no object per query. None where the
        runs cannot say: no runs for this database yet, a run whose class is not known
        ahead, a special-purpose address (IPv4-mapped ones included), an unlocated IPv6
        address outside global space, the debug TXT."""
        table = self._tables[family].get(dyn.service.key, _NO_TABLE)
        if table is _NO_TABLE:
            table = self._class_table(dyn.service, family)
        if table is None:
            return None
        runs = table.runs
        run = runs.index(value)
        cls = runs.class_list[run]
        if cls == NO_WIDENING or is_special(value, family):
            return None  # special blocks are located by their block, never widened
        least = 0
        if table.overrides is not None:
            held, least, _ = table.overrides.narrow(value, runs.bits, 0)
            if held:
                return None  # routed on its own: the class does not know its override
        key = (dyn.qname, qtype, cls, family)
        answer = self._class_answers.get(key)
        if answer is None:
            answer = self._class_answer(dyn, qtype, table, cls, value, key)
            if answer is None:
                return None
        if answer.unlocated_v6 and not_global_v6(value):
            return None
        if answer.result.decision.measured:
            # Measured latency is per client network (and country): below the class, so
            # the network path decides, with a scope of the GeoIP network and /24 at most.
            return None
        if answer.by_bucket:
            key = (*key, value >> table.bucket_shift)
            answer = self._bucket_answers.get(key)
            if answer is None:
                answer = self._class_answer(dyn, qtype, table, cls, value, key)
                if answer is None:
                    return None
        if answer.fixed_scope is not None:
            return answer, answer.fixed_scope
        # The run holds the address's GeoIP network, so the scope widened from the whole
        # address is the one the reference path widens from that network.
        scope = runs.scope_in(run, value, runs.bits)
        if least > scope:
            scope = least  # no wider than the overrides around it allow
        return answer, scope if scope > answer.floor else answer.floor

    def _class_table(self, service: Service, family: int) -> _ClassTable | None:
        """The runs of the service's class in `family`, ready for the query path, and one
        located client per class; None (kept) where there are none to use."""
        table = None
        runs = self._runs.get(service.key)
        if runs is not None and self.geoip is not None and self._runs_key == self.geoip.file_key:
            family_runs = runs.v4 if family == 4 else runs.v6
            if family_runs is not None and family_runs.classes is not None:
                reps = {}
                for cls, first in family_runs.representatives().items():
                    reps[cls] = locate(self.geoip, _address(first, family_runs.bits), None)
                bits = family_runs.bits
                table = _ClassTable(
                    family_runs,
                    reps,
                    bits - BUCKET_PREFIX[family],
                    self._overrides.get(service.key),
                )
        self._tables[family][service.key] = table
        return table

    def _class_answer(
        self,
        dyn: DynamicName,
        qtype: int,
        table: _ClassTable,
        cls: int,
        value: int,
        key: tuple[object, ...],
    ) -> ClassAnswer | None:
        """Decide for class `cls` (and the bucket of `value`, when `key` names one) and keep
        it. Bounded by evicting the oldest entry: a flood of buckets costs route() calls,
        never memory, and never the class answers in the other cache."""
        rep = table.reps.get(cls)
        if rep is None or (qtype == RT.TXT and dyn.zone.debug):
            return None  # the debug TXT names the client's own network: not a class's
        bits = table.runs.bits
        address = _address(value, bits)
        # The decision's client is the first one of its class (explanations are not served
        # from here) with this query's address, which a bucket's hash reads.
        client = Client(address, bits, rep.network, rep.record, True)
        decision = self.decide(dyn.service, client, dyn.label)
        by_bucket = decision.by_network and len(key) == 4
        fixed, floor = self._scope_terms(dyn, qtype, decision, client)
        answer = ClassAnswer(
            GeoResult(dyn, qtype, decision, 0, self._signature(dyn, qtype, decision)),
            fixed,
            floor,
            rep.record is None and bits == 128,
            by_bucket,
        )
        cache = self._class_answers if len(key) == 4 else self._bucket_answers
        bound = CLASS_DECISIONS if len(key) == 4 else BUCKET_DECISIONS
        if len(cache) >= bound:
            cache.pop(next(iter(cache)))
        cache[key] = answer
        return answer

    def locate(
        self,
        address: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
        source_prefix: int | None,
        service: Service | None = None,
    ) -> Client:
        """The client, as `service` sees it: with its ASN and a network no wider than its
        overrides allow, where the service has any."""
        if self.geoip is None:
            client = _unlocated(address, source_prefix)
        else:
            client = locate(self.geoip, address, source_prefix)
        overrides = self._overrides.get(service.key) if service is not None else None
        return client if overrides is None else overrides.narrow_client(client)

    def latency_table(self, service: Service) -> LatencyTable | None:
        return self._latency.get(service.key)

    def decide(self, service: Service, client: Client, label: str | None = None) -> Decision:
        return route(client, service, self.state, self._latency.get(service.key), label)

    def may_be_version_host(self, qname_key: bytes) -> bool:
        """Whether `qname_key` is v<something> right under a service name."""
        n = qname_key[0] if qname_key else 0
        if n < 2 or qname_key[1] != 0x76:  # "v"
            return False
        parent = self.names.get(qname_key[1 + n :])
        return parent is not None and parent.kind == SERVICE

    def version_host(self, qname_key: bytes) -> DynamicName | None:
        """v<version>.<service> for a version some region has reported; None otherwise
        (the name then does not exist: NXDOMAIN from the static side)."""
        if not self.may_be_version_host(qname_key):
            return None
        n = qname_key[0]
        parent = self.names[qname_key[1 + n :]]
        label = qname_key[1 : 1 + n].decode("ascii", "replace")
        if label not in self.version_labels(parent.service):
            return None
        return DynamicName(parent.zone, parent.service, VERSION, label=label, qname=qname_key)

    def version_labels(self, service: Service) -> set[str]:
        judged = self.state.versions.get(service.key)
        if judged is not None:
            seen = set(judged.seen)
        else:
            seen = {region_version(service, r, self.state) for r in service.regions}
        return {version_label(v) for v in seen if v}

    def resolve(self, dyn: DynamicName, qtype: int, client: Client) -> GeoResult:
        decision = self.decide(dyn.service, client, dyn.label)
        signature = self._signature(dyn, qtype, decision)
        return GeoResult(dyn, qtype, decision, self.ecs_scope(dyn, qtype, decision), signature)

    def ecs_scope(
        self,
        dyn: DynamicName,
        qtype: int,
        decision: Decision,
        client: Client | None = None,
        widened: int | None = None,
    ) -> int:
        """The ECS SCOPE PREFIX-LENGTH of a reply: the one place it is decided.

        It claims that every address of the network it names gets this same reply, so it
        is never wider than the truth, whatever the source prefix: it may be longer than
        the source (RFC 7871 7.2.1, "the source was not specific enough"), and it names no
        more than the network the decision is known to hold for (the GeoIP network, or
        the merged run of one routing class around it).

        `client` defaults to the decision's; the class path (by_class) passes the one that
        asked, and as `widened` the merged run's scope around it, which it has already
        found (it never answers the debug TXT).
        """
        client = client or decision.client
        if client.source_prefix == 0:
            # RFC 7871 7.1.2: the resolver sent no client address, so the decision was
            # made from the resolver's own; scope 0 (7.2.1) lets it share that answer with
            # its clients, all of whom it would get for them without ECS anyway.
            return 0
        fixed, floor = self._scope_terms(dyn, qtype, decision, client)
        if fixed is not None:
            return fixed
        if widened is None:
            scope = client.network.prefixlen
            widened = self._widened(dyn.service, client, scope) if scope else 0
        return max(widened, floor)

    @staticmethod
    def _scope_terms(
        dyn: DynamicName, qtype: int, decision: Decision, client: Client
    ) -> tuple[int | None, int]:
        """What an ECS scope is made of, apart from the network the decision holds for: a
        scope fixed whatever the network (or None), and the least it may be."""
        if _same_for_everyone(dyn, qtype, decision.service):
            return 0, 0  # a NODATA by type, or one region and no rule: the scope names no one
        if qtype == RT.TXT and dyn.zone.debug:
            # The debug TXT names the client's own network, so it holds for that one only.
            return client.network.prefixlen, 0
        if decision.measured:
            # Measured latency decided per client network, country and continent
            # (routing.measured): the answer holds for the GeoIP network (and the bucket,
            # where a /24 with its own measurements lies in it), never a merged run.
            if decision.by_network:
                return max(client.network.prefixlen, bucket_prefix(client)), 0
            return client.network.prefixlen, 0
        if decision.by_network:
            # A step hashed the client's bucket (shedding, a canary share): the answer holds
            # where the class and the bucket both do, the longer of the two prefixes.
            return None, bucket_prefix(client)
        return None, 0

    def _widened(self, service: Service, client: Client, scope: int) -> int:
        """The largest network around the client whose addresses all get this decision."""
        runs = self._runs.get(service.key)
        if runs is None or self.geoip is None or self._runs_key != self.geoip.file_key:
            return scope
        if not client.from_database:
            return scope  # a special-purpose block, an IPv4-mapped address: as located
        widened = runs.scope(client.address, scope)
        overrides = self._overrides.get(service.key)
        if overrides is not None:
            bits = client.address.max_prefixlen
            widened = overrides.narrow(int(client.address), bits, widened)[1]
        return widened

    @staticmethod
    def answered_regions(result: GeoResult) -> tuple[str, ...]:
        """The regions whose addresses the answer carries: what `answers_total` counts.

        An SRV answer lists every candidate in order; it counts for its first target, the
        one RFC 2782 clients (geodns.client among them) connect to, so that the answers of
        SRV clients show where they go as those of A/AAAA clients do. Computed once per
        decision (its count slot), never per query."""
        decision = result.decision
        if decision.outcome is not None:
            return ()
        if result.dynamic.kind == SRV:
            if result.qtype in (RT.SRV, RT.ANY) and decision.regions:
                return (decision.regions[0].name,)
            return ()
        if result.qtype not in (RT.A, RT.AAAA, RT.ANY):
            return ()
        family = 6 if result.qtype == RT.AAAA else 4
        return tuple(r.name for r, _ in decision.select(family))

    @staticmethod
    def failed_closed_by(result: GeoResult) -> str | None:
        """The residency rule this answer failed closed under, as `residency_refusals_total`
        labels it: the rule's index when none of its regions was healthy, "unlocated" when
        the client could not be located and the service fails such clients closed; None
        for any other answer (a version pin's NODATA, all regions down: not residency)."""
        decision = result.decision
        if decision.outcome is None or not decision.steps:
            return None
        step = decision.steps[-1].step
        if step == "residency":
            return "unlocated"
        if step == "health" and decision.rule is not None:
            return str(decision.rule.index)
        return None

    def _signature(
        self, dyn: DynamicName, qtype: int, decision: Decision
    ) -> tuple[object, ...] | None:
        if not _holds_addresses(dyn, qtype):
            return (dyn.kind, dyn.label, qtype, "nodata")
        if dyn.kind == ALIAS:
            # The encoded answer holds the chain, so it is shared only by the same alias.
            service_part = self._signature(
                DynamicName(dyn.zone, dyn.service, SERVICE), qtype, decision
            )
            return None if service_part is None else (ALIAS, dyn.chain[0].name, *service_part)
        if decision.outcome is not None:
            # The refusal's EDE text names the rule and the regions' states.
            reason = decision.steps[-1].reason if decision.outcome in _OUTCOME_RCODE else None
            rule = None if decision.rule is None else decision.rule.index
            return (dyn.kind, dyn.label, qtype, decision.outcome, decision.fallback, rule, reason)
        if dyn.kind == VERSION:
            family = 6 if qtype == RT.AAAA else 4
            return (VERSION, dyn.label, qtype, tuple(r.name for r, _ in decision.select(family)))
        if dyn.kind == SRV:
            return (SRV, qtype, tuple(r.name for r in decision.regions))
        if qtype == RT.TXT:
            return None  # the debug TXT (_holds_addresses let it through)
        family = 6 if qtype == RT.AAAA else 4
        return (SERVICE, qtype, tuple(r.name for r, _ in decision.select(family)))

    def resolution(self, result: GeoResult) -> Resolution:
        """The sections of the answer, built with dnspython: once per signature."""
        if result.dynamic.kind == ALIAS:
            dyn = result.dynamic
            inner = replace(result, dynamic=DynamicName(dyn.zone, dyn.service, SERVICE))
            res = self.resolution(inner)
            if res.rcode in (Rcode.REFUSED, Rcode.SERVFAIL):
                return res
            return replace(res, answer=(*dyn.chain, *res.answer))
        dyn, qtype, decision = result.dynamic, result.qtype, result.decision
        zone, service = dyn.zone, dyn.service
        nodata = negative(zone, Rcode.NOERROR)
        if not _holds_addresses(dyn, qtype):
            # The types a name holds are the same for every client, whatever its decision.
            return nodata
        if decision.outcome in _OUTCOME_RCODE:
            why = decision.steps[-1].reason
            if decision.rule is not None:
                why = f"{decision.rule.describe()}: {why}"
            # RFC 8914 18 (Prohibited): a resolver's log says why it was turned away.
            return Resolution(
                _OUTCOME_RCODE[decision.outcome], authoritative=False, ede=(18, why[:200])
            )
        if decision.outcome == "nodata":
            return nodata
        if dyn.kind == SRV:
            return self._srv(zone, service, decision)
        owner = service.name
        if dyn.kind == VERSION:
            owner = dns.name.Name((dyn.label.encode(), *service.name.labels))
        elif qtype == RT.TXT:
            txt = dns.rrset.RRset(service.name, dns.rdataclass.IN, RT.TXT)
            for i, line in enumerate(decision.explain_lines()):
                chunk = f"{i} {line}".encode()[:255]  # one string each, in order
                txt.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, RT.TXT, [chunk]), ttl=0)
            return Resolution(Rcode.NOERROR, True, answer=(txt,))
        if qtype == RT.ANY:
            qtype = RT.A  # RFC 8482: one RRset is enough
        if decision.outcome == "answer":
            # Failing closed with the in-jurisdiction "unavailable" endpoint: a positive
            # answer, cached per client subnet like any other.
            want = 6 if qtype == RT.AAAA else 4
            addresses = [a for a in decision.fallback if (":" in a) == (want == 6)]
        else:
            chosen = decision.select(4 if qtype == RT.A else 6)
            addresses = [a for _, addrs in chosen for a in addrs]
        if not addresses:
            return nodata
        rrset = dns.rrset.from_text_list(owner, service.ttl, "IN", RT(qtype).name, addresses)
        return Resolution(Rcode.NOERROR, True, answer=(rrset,))

    def _srv(self, zone: Zone, service: Service, decision: Decision) -> Resolution:
        owner = srv_name(service)
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, RT.SRV)
        if decision.outcome == "answer":
            # RFC 2782: a target of "." means the service is decidedly not available here.
            rrset.add(dns.rdata.from_text("IN", "SRV", "0 0 0 ."), ttl=service.ttl)
            return Resolution(Rcode.NOERROR, True, answer=(rrset,))
        additional = []
        for rank, region in enumerate(decision.regions):
            host = region_host(service, region.name)
            rrset.add(
                dns.rdata.from_text("IN", "SRV", f"{rank} 1 {region.port or service.port} {host}"),
                ttl=service.ttl,
            )
            node = zone.nodes.get(host, {})
            additional += [node[t] for t in (RT.A, RT.AAAA) if t in node]
        return Resolution(Rcode.NOERROR, True, answer=(rrset,), additional=tuple(additional))


def _holds_addresses(dyn: DynamicName, qtype: int) -> bool:
    """Whether a query of `qtype` at this name is answered per client at all: the rest get
    NODATA, the same for every client."""
    if dyn.kind == SRV:
        return qtype in (RT.SRV, RT.ANY)
    if qtype == RT.TXT:
        return dyn.kind == SERVICE and dyn.zone.debug
    return qtype in (RT.A, RT.AAAA, RT.ANY)


def _same_for_everyone(dyn: DynamicName, qtype: int, service: Service) -> bool:
    """Whether the reply cannot differ between clients, whatever the state."""
    if not _holds_addresses(dyn, qtype):
        return True
    return len(service.regions) <= 1 and not service.residency and service.unlocated is None


def _address(value: int, bits: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value)


def _unlocated(
    address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, source_prefix: int | None
) -> Client:
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    prefix = ip.max_prefixlen if source_prefix is None else source_prefix
    return Client(ip, source_prefix, ipaddress.ip_network((ip, prefix), strict=False), None)


def open_geoip(path: str | os.PathLike[str] | None) -> GeoIPDatabase:
    """The configured database, or the embedded DB-IP Lite one with a warning saying so."""
    db = GeoIPDatabase(path)
    log.info(
        "GeoIP: %s (%s, built %s), read by %s",
        db.path,
        db.database_type,
        db.build_date.date(),
        db.reader,
    )
    if not db.c_extension:
        log.warning(PURE_PYTHON_WARNING)
    if db.embedded:
        log.warning(
            "GeoIP: using the embedded DB-IP City Lite database built %s (%s); point "
            "--geoip-database at a current GeoLite2/GeoIP2/DB-IP .mmdb file for accurate "
            "answers",
            db.build_date.date(),
            db.attribution,
        )
    return db
