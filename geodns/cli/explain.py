"""`geodns explain`: ask the running server how it decides a client, or decide here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from geodns.cli.parser import EXPLAIN_ADMIN
from geodns.cli.serve import scope_cache_option
from geodns.cli.zonefiles import load_zones_at
from geodns.errors import GeodnsError
from geodns.health.state import ALL_UP, load_state_file


def run_explain(args: argparse.Namespace) -> int:
    import json

    from geodns.server.explain import explain_lines

    offline_options = [
        option
        for option, value in (
            ("--zones", args.zones),
            ("--geoip-database", args.geoip_database),
            ("--state", args.state),
            ("--scope-cache", args.scope_cache),
        )
        if value is not None
    ]
    if args.admin and (args.offline or offline_options):
        given = ", ".join(offline_options) or "--offline"
        raise GeodnsError(
            f"--admin asks a running server, {given} an offline evaluation: give one or the other"
        )
    if args.offline or offline_options:
        note = "--offline" if args.offline else f"{offline_options[0]} given"
        body = _explain_offline(args, note)
    else:
        body = _explain_live(args)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print("\n".join(explain_lines(body, args.client)))
    return 0


def _explain_live(args: argparse.Namespace) -> dict[str, Any]:
    """The running server's explanation; offline when no server answers at the default."""
    import urllib.parse

    from geodns.versions.cli import AdminClient, CliError

    url = args.admin or EXPLAIN_ADMIN
    try:
        client = AdminClient(url, None, args.timeout, _urlopen)
        query = {"name": args.name, "client": args.client}
        if args.prefix is not None:
            query["prefix"] = str(args.prefix)
        status, body = client.call("GET", "/api/explain?" + urllib.parse.urlencode(query))
    except CliError as exc:
        if args.admin:
            raise GeodnsError(str(exc)) from None
        return _explain_offline(args, f"no server answered at {url}; --admin URL to ask one")
    explained = isinstance(body, dict) and status == 200 and "steps" in body and "state" in body
    if not explained and not args.admin and status == 404:
        # Something else answers there (or a geodns without /api/explain): not a live server.
        return _explain_offline(args, f"no geodns admin API at {url}; --admin URL to ask one")
    if not explained:
        message = body.get("error") if isinstance(body, dict) else None
        if status == 200:
            message = "the reply is not a geodns explanation"
        raise GeodnsError(f"{url}: {message or f'HTTP {status}'}")
    body["state"]["server"] = client.base
    return body


def _urlopen(request: Any, timeout: float) -> Any:
    import urllib.request

    # Straight to the address given: an HTTP proxy from the environment would not be it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=timeout)


def _explain_offline(args: argparse.Namespace, note: str) -> dict[str, Any]:
    import time

    from geodns.geo.geoip import GeoIPDatabase
    from geodns.server.explain import explain, explain_body, latency_json, offline_state
    from geodns.server.geoanswer import GeoAnswers

    zones = load_zones_at(args.zones)
    state = load_state_file(args.state, zones) if args.state else ALL_UP
    # Not open_geoip: its start-up warning about the embedded database would come with every
    # explanation; the state line says it instead, when that database located the client.
    geo = GeoAnswers(zones, state, GeoIPDatabase(args.geoip_database))
    cache = scope_cache_option(args.scope_cache)
    merged = None
    if geo.geoip is not None and cache is not None:
        from geodns.control.scopes import load_cached

        merged = load_cached(geo.geoip, zones, cache)
        if merged is not None:
            geo.set_scopes(*merged)
    result = explain(geo, args.name, args.client, args.prefix)
    file = Path(args.state).name if args.state else None
    latency = latency_json(geo, result, time.time())
    body = explain_body(result, merged is not None, offline_state(file, note), None, latency)
    if geo.geoip is not None and geo.geoip.embedded and body["client"].get("country"):
        body["state"]["note"] = (
            f"{note}; client located by the embedded DB-IP Lite database of "
            f"{geo.geoip.build_date.date()}, --geoip-database FILE for a current one"
        )
    return body
