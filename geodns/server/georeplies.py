"""Replies for service names (the names GeoAnswers routes), on the full path: from the
client's class where the merged runs can say, else per client network, with the decisions
and their encoded answers kept for the current region state."""

from __future__ import annotations

from typing import Any

import dns.name

from geodns.routing.context import bucket
from geodns.server.geoanswer import ClassAnswer, DynamicName, GeoAnswers, GeoResult, client_address
from geodns.server.prepared import (
    BY_SOURCE,
    BY_STATE,
    CLASS_IN,
    Prepared,
    cookied,
    encode_resolution,
    rcode_of,
)
from geodns.server.render import Renderer
from geodns.server.stats import QueryStats, ReplyKey
from geodns.wire.query import Query

# Bounded so that a flood of distinct client networks costs a refill, not memory.
DECISION_CACHE_SIZE = 50_000
# A decision cache entry saying "decided per bucket: look again with the client's bucket".
BY_BUCKET: Any = object()


class GeoReplies:
    """The full path's replies for service names, for one configuration and region state
    (`drop` forgets every decision when either changes)."""

    def __init__(self, geo: GeoAnswers, renderer: Renderer, stats: QueryStats) -> None:
        self.geo = geo
        self.renderer = renderer
        self.stats = stats
        # (service, name asked, client network, qtype, ECS /0) -> (encoded answer, ECS scope,
        # count slot)
        # ... and the client's bucket after them, for a network whose entry is BY_BUCKET
        self.decisions: dict[tuple[object, ...], tuple[Prepared, int, int] | Any] = {}
        # (service, decision signature) -> encoded answer: few, shared by many networks
        self._encoded: dict[tuple[str, object], Prepared] = {}

    def drop(self) -> None:
        """After a state change or a new GeoIP database."""
        self.decisions.clear()
        self._encoded.clear()
        self.geo.drop_class_decisions()

    def reply(
        self,
        dynamic: DynamicName,
        query: Query,
        addr: tuple,
        qid: int,
        flags: int,
        question: bytes,
        transport: str,
        cookie: bytes = b"",
        until: float = 0.0,
    ) -> tuple[bytes, bool | str | float, int]:
        edns = query.edns
        ecs = edns.ecs if edns is not None else None
        if ecs is not None and ecs.source_prefix > 0:
            # The class path first: one search in the merged runs, a decision per class
            # (and bucket), no GeoIP lookup and no cache entry per client network.
            size = 4 if ecs.family == 1 else 16
            value = int.from_bytes(ecs.address + bytes(size - len(ecs.address)), "big")
            found = self.geo.class_answer(dynamic, query.qtype, value, 4 if size == 4 else 6)
            if found is not None:
                prepared, counted = self.class_reply(dynamic, query.qtype, found[0])
                reply, _ = self.renderer.render(
                    prepared, qid, flags, question, edns, transport, found[1], cookie
                )
                if cookie:
                    return reply, cookied(True, until), counted
                return reply, BY_STATE, counted
            address = client_address(ecs.family, ecs.address, ecs.source_prefix)
            client = self.geo.locate(address, ecs.source_prefix, dynamic.service)
        else:
            # No ECS, or /0 (the client opted out): the resolver's address is all we have.
            client = self.geo.locate(addr[0], 0 if ecs is not None else None, dynamic.service)
        # A /0 query's reply claims scope 0 (GeoAnswers.ecs_scope): it must not share a
        # cached decision with the queries that claim this network's scope.
        key = (
            dynamic.service.key,
            dynamic.qname,
            client.network,
            query.qtype,
            client.source_prefix == 0,
        )
        cached = self.decisions.get(key)
        if cached is BY_BUCKET:
            # This network's decisions hang on the client's bucket (shedding, a canary
            # share): they are kept per bucket, which the network's entry only points to.
            key = (*key, bucket(client))
            cached = self.decisions.get(key)
        if cached is not None:
            self.stats.decision_hits += 1
        else:
            self.stats.decision_misses += 1
            result = self.geo.resolve(dynamic, query.qtype, client)
            if result.decision.by_network and len(key) == 5:
                self.decisions[key] = BY_BUCKET
                key = (*key, bucket(client))
            prepared = self._encoded_answer(dynamic, query.qtype, result)
            counted = self._count_slot(dynamic, query.qtype, prepared, result)
            cached = (prepared, result.scope_prefix, counted)
            if len(self.decisions) >= DECISION_CACHE_SIZE:
                self.decisions.clear()
                if len(key) == 6:
                    self.decisions[key[:5]] = BY_BUCKET
            self.decisions[key] = cached
        prepared, scope, counted = cached
        reply, _ = self.renderer.render(
            prepared, qid, flags, question, edns, transport, scope, cookie
        )
        if cookie:
            return reply, cookied(True, until), counted
        # The bytes decide the reply only when they carry the client's subnet; without one,
        # or with SOURCE PREFIX-LENGTH 0 (RFC 7871 7.1.2: the resolver's address stands for
        # the client), the bytes and the sender's address do.
        by_bytes = ecs is not None and ecs.source_prefix > 0
        return reply, BY_STATE if by_bytes else BY_SOURCE, counted

    def class_reply(
        self, dynamic: DynamicName, qtype: int, answer: ClassAnswer
    ) -> tuple[Prepared, int]:
        """The encoded answer of a class path decision and its count slot, kept on the
        ClassAnswer (the encoding itself is shared by every decision with its signature)."""
        reply = answer.reply
        if reply is not None:
            self.stats.decision_hits += 1
            return reply  # type: ignore[return-value]
        self.stats.decision_misses += 1
        prepared = self._encoded_answer(dynamic, qtype, answer.result)
        reply = answer.reply = (prepared, self._count_slot(dynamic, qtype, prepared, answer.result))
        return reply

    def _encoded_answer(self, dynamic: DynamicName, qtype: int, result: GeoResult) -> Prepared:
        """The decision's answer in wire form, encoded once per signature (every client
        whose decision has it shares it); a signature of None is this client's alone."""
        shared = (dynamic.service.key, result.signature)
        prepared = self._encoded.get(shared) if result.signature is not None else None
        if prepared is None:
            prepared = encode_resolution(
                dns.name.from_wire(dynamic.qname, 0)[0],
                qtype,
                CLASS_IN,
                self.geo.resolution(result),
            )
            if result.signature is not None:
                self._encoded[shared] = prepared
        return prepared

    def _count_slot(
        self, dynamic: DynamicName, qtype: int, prepared: Prepared, result: GeoResult
    ) -> int:
        """Where replies of this answer are counted (zone, type, rcode, service, regions,
        residency rule): once per decision, so that counting costs a query nothing more."""
        return self.stats.key_id(
            ReplyKey(
                dynamic.zone.origin.to_text(omit_final_dot=True),
                qtype,
                rcode_of(prepared),
                dynamic.service.key,
                self.geo.answered_regions(result),
                self.geo.failed_closed_by(result),
            )
        )
