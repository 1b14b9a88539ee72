"""Do the servers agree? Before any load, bench/geo.py asks every server an A query with
EDNS Client Subnet from each client and compares the answers: the addresses must agree
(in many-subnet mode, differences are explained when geodns orders the client's country by
distance, and at most UNEXPLAINED_SHARE of the sample may differ otherwise); AA and TTL
differences are noted, and each server's ECS scope is shown."""

from __future__ import annotations

import json
import sys

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from bench.geoservers import GeoServer
from bench.geoservice import SERVICE, TITLES, Client, ServiceSpec
from bench.harness import HOST, BenchError

UNEXPLAINED_SHARE = 0.02  # many-subnet mode: sampled answers allowed to differ unexplained


def ask(server: GeoServer, name: str, client: Client) -> dict:
    options = []
    if client.subnet is not None:
        options.append(
            dns.edns.ECSOption(str(client.subnet.network_address), client.subnet.prefixlen)
        )
    query = dns.message.make_query(name, "A", use_edns=0, options=options)
    try:
        reply = dns.query.udp(query, HOST, port=server.port, timeout=2)
    except (dns.exception.DNSException, OSError) as exc:
        return {"error": repr(exc)}
    addresses, ttls = [], set()
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.A:
            addresses += sorted(r.address for r in rrset)
            ttls.add(rrset.ttl)
    scope = None
    for option in reply.options:
        if isinstance(option, dns.edns.ECSOption):
            scope = option.scopelen
    return {
        "rcode": dns.rcode.to_text(reply.rcode()),
        "aa": bool(reply.flags & dns.flags.AA),
        "addresses": addresses,
        "ttl": sorted(ttls),
        "scope": scope,
    }


def verify(
    servers: list[GeoServer], name: str, clients: list[Client], spec: ServiceSpec
) -> tuple[list[dict], list[str], list[str]]:
    """Ask every server for every client: (rows, fatal differences, other differences)."""
    rows, fatal, minor = [], [], []
    for client in clients:
        answers = {s.kind: ask(s, name, client) for s in servers}
        row = {
            "client": client.label,
            "subnet": None if client.subnet is None else str(client.subnet),
            "continent": client.continent,
            "answers": answers,
        }
        rows.append(row)
        key = {
            k: (a.get("error"), a.get("rcode"), tuple(a.get("addresses", ())))
            for k, a in answers.items()
        }
        if len(set(key.values())) > 1:
            fatal.append(
                f"{client.label}: " + "; ".join(f"{TITLES[k]} {v}" for k, v in key.items())
            )
        for field in ("aa", "ttl"):
            values = {k: a.get(field) for k, a in answers.items()}
            if len({json.dumps(v) for v in values.values()}) > 1:
                minor.append(f"{client.label}: {field} differs: {values}")
        addresses = next(iter(answers.values())).get("addresses") or []
        row["region"] = ", ".join(spec.region_of(a) for a in addresses) or "-"
    return rows, fatal, minor


def classify_differences(
    fatal: list[str], rows: list[dict], by_distance: set[str]
) -> tuple[list[str], list[str]]:
    """(explained, unexplained) differences of the many-subnet sample. Explained: a
    country geodns orders by distance (see country_orders), where the others follow the
    continent's order."""
    explained, unexplained = [], []
    by_label = {row["client"]: row for row in rows}
    for line in fatal:
        label = line.split(":", 1)[0]
        row = by_label.get(label)
        country = label.split()[0]
        detail = line
        if row is not None:
            answers = {
                TITLES[k]: ",".join(a.get("addresses", [])) or a.get("rcode") or a.get("error")
                for k, a in row["answers"].items()
            }
            detail = f"{row['subnet']} ({country}, {row['continent'] or '-'}): " + "; ".join(
                f"{k} {v}" for k, v in answers.items()
            )
        if country in by_distance:
            explained.append(detail + " [country orders by distance in geodns]")
        else:
            unexplained.append(detail)
    return explained, unexplained


def print_verification(rows: list[dict], servers: list[GeoServer]) -> None:
    kinds = [s.kind for s in servers]
    print(f"answers for A {SERVICE} with ECS (all servers must agree on the addresses):")
    width = max([18] + [len(row["subnet"] or "") for row in rows])
    header = f"{'client':<10} {'ECS subnet':<{width}} {'cont':<4} {'region':<15} {'address':<12}"
    header += "".join(f" {TITLES[k] + ' scope':>15}" for k in kinds)
    print(header)
    print("-" * len(header))
    for row in rows:
        first = row["answers"][kinds[0]]
        address = ",".join(first.get("addresses", [])) or first.get("rcode", "error")
        line = (
            f"{row['client']:<10} {row['subnet'] or '-':<{width}} {row['continent'] or '-':<4} "
            f"{row['region']:<15} {address:<12}"
        )
        for k in kinds:
            a = row["answers"][k]
            scope = "error" if "error" in a else ("-" if a["scope"] is None else f"/{a['scope']}")
            line += f" {scope:>15}"
        print(line)


def agree(
    servers: list[GeoServer],
    name: str,
    checked: list[Client],
    spec: ServiceSpec,
    by_distance: set[str] | None,
) -> tuple[list[dict], list[str], list[str], list[str]]:
    """Ask every server for every client in `checked` and print the answers: (rows, other
    differences, explained, unexplained). `by_distance` (many-subnet mode: the countries
    geodns orders by distance) explains differences; without it any difference in the
    addresses is fatal. Raises BenchError when the servers disagree beyond that."""
    rows, fatal, minor = verify(servers, name, checked, spec)
    print_verification(rows, servers)
    explained: list[str] = []
    if by_distance is not None:
        explained, fatal = classify_differences(fatal, rows, by_distance)
        for line in explained + fatal:
            print(f"  differs: {line}", file=sys.stderr)
        allowed = int(UNEXPLAINED_SHARE * len(checked))
        if len(fatal) > allowed:
            raise BenchError(
                f"{len(fatal)} of {len(checked)} sampled subnets answered differently "
                f"for no known reason (at most {allowed} allowed):\n  " + "\n  ".join(fatal)
            )
    elif fatal:
        raise BenchError("the servers answer differently:\n  " + "\n  ".join(fatal))
    return rows, minor, explained, fatal
