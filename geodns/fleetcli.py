"""`geodns fleet`: the fleet as a running node sees it, from its admin HTTP API.

It reads the "fleet" section of GET /api/state (no token: reading needs none), the same
one the dashboard's Fleet panel draws (docs/fleet-view.md):

    store etcd etcd://10.0.0.5:2379 (prefix /geodns/): connected since 12:00:03, revision 1234,
    commit to watch 4 ms
    nodes: 3, 1 differs
      *  dns-a  10.0.0.1:53  0.2.0  seen now       agrees
         dns-b  10.0.0.2:53  0.2.0  seen 2 s ago   agrees
         dns-c  10.0.0.3:53  0.1.9  seen 41 s ago  DIFFERS
    inference.example.com
      region     dns-a  dns-b  dns-c  quorum
      us-east-1  up     up     down   up (majority, 2 up 1 down)
    forces: 1
      inference.example.com  eu-west-1  drain  by alice (INC-7)  5 min ago
    rollouts: 1
      inference.example.com: 42 -> 43 running (us-east-1 updated, eu-west-1 draining)

The store line is one line, folded here. `--json` prints the section as the server sent
it. Exit status: 0 the store answers and every node agrees; 1 the store is unreachable or
a node differs (for scripts and cron); 2 usage, connection or any other error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from geodns.versions.cli import DEFAULT_ADMIN, AdminClient, CliError, Opener

EXIT_OK, EXIT_DEGRADED, EXIT_ERROR = 0, 1, 2


def add_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Register `geodns fleet` on the top-level parser's subparsers."""
    fleet = subparsers.add_parser(
        "fleet",
        parents=list(parents),
        help="show the fleet's nodes, shared store and health votes, through the admin API",
        description="Show the fleet as a running `geodns serve` sees it: the shared store, "
        "every live node and whether it agrees, and each region's health votes and quorum. "
        "Exit status 1 when the store is unreachable or a node differs.",
    )
    fleet.add_argument(
        "action",
        nargs="?",
        choices=["status"],
        default="status",
        help="what to show, the only one so far (default: status)",
    )
    fleet.add_argument(
        "--admin",
        metavar="URL",
        default=DEFAULT_ADMIN,
        help=f"the node's admin HTTP address (default: {DEFAULT_ADMIN})",
    )
    fleet.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the server (default: 10)",
    )
    fleet.add_argument("--json", action="store_true", help="print the fleet section's JSON")
    return fleet


def run(args: argparse.Namespace, opener: Opener | None = None) -> int:
    """Carry out `geodns fleet`; the exit status."""
    try:
        client = AdminClient(args.admin, None, args.timeout, opener or _direct)
        status, body = client.call("GET", "/api/state")
        if status != 200:
            message = body.get("error") if isinstance(body, dict) else None
            raise CliError(f"{client.base}/api/state: {message or f'HTTP {status}'}")
        fleet = body.get("fleet") if isinstance(body, dict) else None
        if not isinstance(fleet, dict):
            raise CliError(
                f"{client.base}/api/state has no fleet section: not geodns, or a geodns from"
                " before the shared store"
            )
        if args.json:
            text = json.dumps(fleet, indent=2, sort_keys=True)
        else:
            now = body.get("server", {}).get("now") or time.time()
            text = "\n".join(describe(fleet, float(now)))
    except CliError as exc:
        print(f"geodns fleet: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        print(f"geodns fleet: unexpected reply from the server: {exc!r}", file=sys.stderr)
        return EXIT_ERROR
    print(text)
    return EXIT_OK if healthy(fleet) else EXIT_DEGRADED


def healthy(fleet: dict[str, Any]) -> bool:
    """The store answers and every live node decides answers as this one does."""
    return bool(fleet["store"]["connected"]) and not fleet["disagree"]


def _direct(request: urllib.request.Request, timeout: float) -> Any:
    # Straight to the address given: an HTTP proxy from the environment would not be it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=timeout)


# --- printing --------------------------------------------------------------------------------


def describe(fleet: dict[str, Any], now: float) -> list[str]:
    """What a person reads: the store, the nodes, each service's votes, then the forces and
    rollouts every node shares."""
    lines = [_store_line(fleet["store"], now)]
    lines += [f"  problem: {p}" for p in fleet["store"].get("problems") or []]
    nodes = fleet["nodes"]
    differ = len(fleet["disagree"])
    lines.append(
        f"nodes: {len(nodes)}" + (f", {differ} differ{'s' * (differ == 1)}" if differ else "")
    )
    rows = [
        [
            "*" if n["self"] else " ",
            n["name"],
            ", ".join(n["dns"]) or "-",
            n["version"],
            "seen " + ("now" if n["self"] else ago(n["last_seen"], now)),
            {True: "agrees", False: "DIFFERS"}.get(n["agrees"], "unknown"),
        ]
        for n in nodes
    ]
    lines += ["  " + line for line in _columns(rows)]
    names = [n["name"] for n in nodes]
    for service, regions in sorted(fleet["votes"].items()):
        voters = names + sorted({v for r in regions.values() for v in r["votes"]} - set(names))
        rows = [["region", *voters, "quorum"]]
        for region, verdict in regions.items():
            cells = [verdict["votes"].get(v, {}).get("health", "-") for v in voters]
            rows.append([region, *cells, _quorum(verdict)])
        lines.append(service)
        lines += ["  " + line for line in _columns(rows)]
    forces = fleet.get("forces") or []
    lines.append(f"forces: {len(forces) or 'none'}")
    rows = [
        [f["service"], f["region"], f["state"], f"by {f['by'] or '?'}", ago(f["set_at"], now)]
        for f in forces
    ]
    lines += ["  " + line for line in _columns(rows)]
    rollouts = fleet.get("rollouts") or []
    lines.append(f"rollouts: {len(rollouts) or 'none'}")
    for r in rollouts:
        steps = ", ".join(f"{name} {phase}" for name, phase in r["regions"].items()) or "none begun"
        lines.append(f"  {r['service']}: {r['from_version']} -> {r['to']} {r['status']} ({steps})")
    return lines


def _store_line(store: dict[str, Any], now: float) -> str:
    kind, where = store["kind"], store["description"]
    line = f"store {where if where.startswith(kind) else f'{kind} {where}'}: "
    if store["connected"]:
        line += f"connected since {_clock(store['since'])}, revision {store['revision']}"
        if store.get("round_trip_seconds") is not None:
            line += f", commit to watch {store['round_trip_seconds'] * 1000:.0f} ms"
    else:
        line += (
            f"UNREACHABLE since {_clock(store['since'])} ({ago(store['since'], now)}):"
            f" {store['error']}; answering from revision {store['revision']} and this node's"
            " own checks, changes are refused"
        )
    if store.get("lost"):
        line += f"; lost {store['lost']} time{'s' * (store['lost'] != 1)}"
    return line


def _quorum(verdict: dict[str, Any]) -> str:
    result = verdict["result"] or "unchecked"
    return f"{result} ({verdict['policy']}, {verdict['up']} up {verdict['down']} down)"


def ago(t: float | None, now: float) -> str:
    """ "3 s ago", "5 min ago", "2 h ago"; "never" for None."""
    if t is None:
        return "never"
    s = max(0, round(now - t))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    return f"{s // 3600} h ago"


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows padded to aligned columns (the last one not padded)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
