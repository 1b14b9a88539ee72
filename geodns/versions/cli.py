"""`geodns rollout ...`: drive the rolling-update guard through the admin HTTP API.

HTTP contract (the admin server implements it; `rollout_reply` and `region_reply` in
geodns/versions/rollout.py build the success bodies). {s} is the service key
(`inference.example.com`, a final dot tolerated), {r} a region name; both URL-quoted.

    POST /api/services/{s}/rollouts                          body {"to": "43", "min_old": 2,
                                                                   "soak_seconds": 600 | null}
         201 ROLLOUT                      started ("min_old" and "soak_seconds" may be left
                                          out: 2 and null)
    GET  /api/services/{s}/rollouts/current                  200 ROLLOUT
    POST /api/services/{s}/rollouts/current/validate         200 ROLLOUT (empty body)
    POST /api/services/{s}/rollouts/current/abort            200 ROLLOUT (empty body)
    POST /api/services/{s}/rollouts/current/regions/{r}/begin  200 REGION (empty body)
    GET  /api/services/{s}/rollouts/current/regions/{r}      200 REGION

    ROLLOUT = to_json(rollout) + {"pending": [regions not begun, in config order],
                                  "server_time": epoch seconds}
        {"service": "inference.example.com", "from_version": "42", "to": "43",
         "min_old": 2, "soak_seconds": 600.0 | null, "started": 1764077982.1,
         "status": "running" | "validated" | "completed" | "aborted",
         "validated_at": null | t, "ended_at": null | t, "soak_since": null | t,
         "regions": {"us-east-1": {"phase": "draining" | "updated", "begun": t,
                                   "deploy_after": t, "updated_at": null | t}},
         "pending": ["eu-west-1", "ap-northeast-1"], "server_time": t}
    REGION = ROLLOUT + {"region": "us-east-1",
                        "phase": "draining" | "updated" | "pending" (not begun),
                        "deploy_after": t | null, "may_deploy": bool,
                        "wait_seconds": seconds until deploy_after (0 once passed) | null}

    Errors, all {"error": "one line"}:
         400 the body is not JSON, not an object, or has no "to" (start)
         401 missing or wrong bearer token (POST only, as for the other admin routes)
         403 changes are off: the server has no admin token
         404 no such service, no rollout of it (the `current` routes), no such region
         409 a refusal: RolloutRefused's text, "refused: only 1 other region healthy on v41,
             min_old is 2"; values the rules reject (min_old -1, soak_seconds "x") are
             refusals too, so the server passes the body's values to the guard unchecked
         503 the store cannot be reached or written (nothing changed)
    The guard's exceptions map one to one: RolloutRefused 409, RolloutNotFound 404,
    StoreUnavailable 503. `current` is the service's latest rollout, finished ones
    included: GET shows a completed or aborted one; acting on it is refused (409).

Exit status: 0 done; 1 the server refused (409) or found nothing (404); 2 usage, token,
connection or any other error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from geodns.errors import GeodnsError
from geodns.versions.rollout import iso_time

DEFAULT_ADMIN = "http://127.0.0.1:8053"
TOKEN_ENV = "GEODNS_ADMIN_TOKEN"  # as geodns.admin.app, without importing aiohttp here
EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
SERVICE_HELP = "service name, e.g. inference.example.com"

Opener = Callable[..., Any]  # urllib.request.urlopen(request, timeout=...) or a test's


class CliError(GeodnsError):
    """Exit 2 with this message."""


def add_parser(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Register `geodns rollout` on the top-level parser's subparsers."""
    rollout = subparsers.add_parser(
        "rollout",
        parents=list(parents),
        help="roll a new model version out region by region, through the admin API",
        description="Drive the rolling-update guard of a running `geodns serve`.",
    )
    # Accepted before or after the action: `geodns rollout --json status S` and
    # `geodns rollout status S --json`; the action's copies default to SUPPRESS so that
    # they do not reset what was given before the action.
    _options(rollout, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _options(common, suppress=True)
    actions = rollout.add_subparsers(dest="rollout_action", required=True, metavar="ACTION")

    start = actions.add_parser("start", parents=[common], help="start a rollout to a version")
    start.add_argument("service", help=SERVICE_HELP)
    start.add_argument("--to", required=True, metavar="VERSION", help="the version to roll out")
    start.add_argument(
        "--min-old",
        type=int,
        default=2,
        metavar="N",
        help="other regions that must stay healthy while one is updated: on the old version,"
        " or after validation on either (default: 2)",
    )
    start.add_argument(
        "--soak",
        type=float,
        metavar="S",
        help="validate by itself once every updated region has been healthy on the new"
        " version this long (default: validate by hand)",
    )

    begin = actions.add_parser(
        "begin", parents=[common], help="drain a region for its update; says when to deploy"
    )
    begin.add_argument("service", help=SERVICE_HELP)
    begin.add_argument("region", help="the region to update next, e.g. us-east-1")

    status = actions.add_parser(
        "status", parents=[common], help="show the rollout, or one region: may it be deployed?"
    )
    status.add_argument("service", help=SERVICE_HELP)
    status.add_argument(
        "region", nargs="?", help="one region: may it be deployed, and when (default: all)"
    )

    for name, text in (
        ("validate", "approve the new version for plain answers beside the old one"),
        ("abort", "take the new version out of plain answers again"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("service", help=SERVICE_HELP)
    return rollout


def _options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--admin",
        metavar="URL",
        default=default(DEFAULT_ADMIN),
        help=f"the server's admin HTTP address (default: {DEFAULT_ADMIN})",
    )
    parser.add_argument(
        "--admin-token-file",
        metavar="FILE",
        default=default(None),
        help=f"file holding the admin bearer token (default: ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(10.0),
        metavar="S",
        help="seconds to wait for the server (default: 10)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the reply's JSON"
    )


# --- running ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, opener: Opener = urllib.request.urlopen) -> int:
    """Carry out `geodns rollout ACTION`; the exit status."""
    try:
        client = AdminClient(args.admin, _token(args.admin_token_file), args.timeout, opener)
        status, body = _request(client, args)
    except CliError as exc:
        print(f"geodns rollout: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if status >= 400:
        message = body.get("error") if isinstance(body, dict) else None
        print(f"geodns rollout: {message or f'HTTP {status}'}", file=sys.stderr)
        if status in (401, 403):
            print(
                f"geodns rollout: give the server's token with --admin-token-file FILE or"
                f" ${TOKEN_ENV}",
                file=sys.stderr,
            )
        return EXIT_REFUSED if status in (404, 409) else EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        try:
            print(describe(args.rollout_action, body, getattr(args, "region", None)))
        except (KeyError, TypeError, ValueError) as exc:
            print(f"geodns rollout: unexpected reply from the server: {exc!r}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK


def _token(path: str | None) -> str | None:
    if path is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise CliError(f"--admin-token-file {path}: {exc.strerror}") from None
    if not token:
        raise CliError(f"--admin-token-file {path}: the file is empty")
    return token


def _request(client: AdminClient, args: argparse.Namespace) -> tuple[int, Any]:
    base = f"/api/services/{_quote(args.service)}/rollouts"
    action = args.rollout_action
    if action == "start":
        body = {"to": args.to, "min_old": args.min_old, "soak_seconds": args.soak}
        return client.call("POST", base, body)
    if action == "begin":
        return client.call("POST", f"{base}/current/regions/{_quote(args.region)}/begin")
    if action == "status" and args.region:
        return client.call("GET", f"{base}/current/regions/{_quote(args.region)}")
    if action == "status":
        return client.call("GET", f"{base}/current")
    return client.call("POST", f"{base}/current/{action}")


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class AdminClient:
    """JSON over HTTP to the admin API, stdlib only: the CLI runs where aiohttp may not."""

    def __init__(self, base: str, token: str | None, timeout: float, opener: Opener) -> None:
        parsed = urllib.parse.urlsplit(base if "://" in base else f"http://{base}")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"--admin {base}: not an http(s) URL")
        # A path is kept: the admin side may sit behind a proxy under a prefix.
        path = parsed.path.rstrip("/")
        self.base = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))
        self.token = token
        self.timeout = timeout
        self.opener = opener

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON reply); CliError when no HTTP answer came back."""
        headers = {"Accept": "application/json"}
        data = None
        if method == "POST":
            data = json.dumps(body or {}).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener(request, timeout=self.timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            # 4xx and 5xx arrive as exceptions, and still carry the server's JSON.
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the admin API at {self.base}: {reason}") from None
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            if status >= 400:
                return status, {"error": f"HTTP {status}: {raw[:200].decode(errors='replace')}"}
            raise CliError(
                f"{method} {path}: HTTP {status} with a reply that is not JSON"
            ) from None


# --- printing --------------------------------------------------------------------------------


def describe(action: str, body: dict[str, Any], region: str | None = None) -> str:
    """What a person reads after ACTION, from the server's reply."""
    now = float(body.get("server_time") or time.time())
    if action == "begin":
        return (
            f"{body['region']} of {body['service']} drained; deploy after"
            f" {iso_time(body['deploy_after'])} ({_wait_phrase(body, now)})"
        )
    if action == "status" and region:
        return _region_line(body, now)
    head = _head(body)
    if action == "start":
        pending = ", ".join(body.get("pending") or []) or "none"
        return (
            f"{head}\nregions to update: {pending}\n"
            f"next: geodns rollout begin {body['service']} REGION"
        )
    if action == "validate":
        return f"{head}\n{body['to']} now reaches plain answers beside {body['from_version']}"
    if action == "abort":
        return f"{head}\nplain answers get {body['from_version']} only"
    lines = [head]
    for name, step in body["regions"].items():
        lines.append("  " + _step_line(name, step, body, now))
    lines += [f"  {name}: not begun" for name in body.get("pending") or []]
    return "\n".join(lines)


def _head(body: dict[str, Any]) -> str:
    soak = body.get("soak_seconds")
    how = "validate by hand" if soak is None else f"soak {soak:g} s"
    line = (
        f"rollout of {body['service']} from {body['from_version']} to {body['to']}:"
        f" {body['status']} (started {iso_time(body['started'])}, min_old {body['min_old']}, {how})"
    )
    if body.get("validated_at") is not None:
        line += f"; validated {iso_time(body['validated_at'])}"
    if body.get("ended_at") is not None:
        line += f"; {body['status']} {iso_time(body['ended_at'])}"
    return line


def _region_line(body: dict[str, Any], now: float) -> str:
    name = body["region"]
    step = body["regions"].get(name)
    if step is None:
        return f"{name} of {body['service']}: not begun"
    return f"{_step_line(name, step, body, now)} ({body['service']})"


def _step_line(name: str, step: dict[str, Any], body: dict[str, Any], now: float) -> str:
    if step["phase"] == "updated":
        return f"{name}: updated to {body['to']} {iso_time(step['updated_at'])}"
    line = f"{name}: draining, deploy after {iso_time(step['deploy_after'])}"
    if body["status"] not in ("running", "validated"):
        return f"{line} (rollout {body['status']}: do not deploy)"
    wait = step["deploy_after"] - now
    return f"{line}: {'may deploy now' if wait <= 0 else f'wait {math.ceil(wait)} s'}"


def _wait_phrase(body: dict[str, Any], now: float) -> str:
    wait = body.get("wait_seconds")
    if wait is None:
        wait = body["deploy_after"] - now
    return "now" if wait <= 0 else f"in {math.ceil(wait)} s"
