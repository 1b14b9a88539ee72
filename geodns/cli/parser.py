"""The `geodns` command line: every command and option, and their help (docs/cli.md is
generated from it by geodns.clidoc)."""

from __future__ import annotations

import argparse

from geodns import __version__, fleetcli
from geodns.logformat import FORMATS
from geodns.versions import cli as rollout_cli

EXPLAIN_ADMIN = "http://127.0.0.1:8053"  # `serve --http`'s default, where explain looks first


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geodns", description=__doc__)
    parser.add_argument("--version", action="version", version=f"geodns {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info); logs go to stderr, one line per event",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=FORMATS,
        help="text, or json: one object per line with ts, level, logger, msg and the "
        "event's fields (default: text; see docs/logging.md)",
    )
    # Also accepted after the command (`geodns serve --log-level debug`), as operators type it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
        help=argparse.SUPPRESS,
    )
    common.add_argument(
        "--log-format", default=argparse.SUPPRESS, choices=FORMATS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="answer DNS queries for the zones")
    serve.add_argument(
        "--zones",
        metavar="PATH",
        help="zone directory or file (default: ./zones, else the embedded example zone)",
    )
    serve.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="address to answer on, UDP and TCP; repeatable "
        "(default: 127.0.0.1:5300; IPv6 as [::1]:5300)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT (default: 1)",
    )
    serve.add_argument(
        "--udp-size",
        type=int,
        default=1232,
        metavar="BYTES",
        help="EDNS UDP payload size to advertise and send up to (default: 1232)",
    )
    serve.add_argument(
        "--server-id",
        default=None,
        metavar="NAME",
        help="answer to NSID and CH TXT id.server (default: the host name)",
    )
    serve.add_argument(
        "--tcp-idle-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds before an idle TCP connection is closed (default: 10)",
    )
    serve.add_argument(
        "--tcp-max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open TCP connections per worker (default: 1000)",
    )
    serve.add_argument(
        "--rrl-rate",
        type=int,
        default=200,
        metavar="N",
        help="response rate limit: UDP replies per second per client network and response "
        "class, 0 for none (default: 200, as NSD; see docs/rrl.md)",
    )
    serve.add_argument(
        "--rrl-slip",
        type=int,
        default=2,
        metavar="N",
        help="send every Nth rate-limited reply truncated (TC=1) so real clients retry over "
        "TCP, drop the rest; 0 drops all, 1 truncates all (default: 2, as NSD)",
    )
    serve.add_argument(
        "--rrl-ipv4-prefix",
        type=int,
        default=24,
        metavar="BITS",
        help="IPv4 clients are rate-limited per network of this length (default: 24)",
    )
    serve.add_argument(
        "--rrl-ipv6-prefix",
        type=int,
        default=56,
        metavar="BITS",
        help="IPv6 clients are rate-limited per network of this length (default: 56)",
    )
    serve.add_argument(
        "--rrl-exempt",
        action="append",
        default=[],
        metavar="CIDR",
        help="never rate-limit replies to this network; repeatable",
    )
    serve.add_argument(
        "--geoip-database",
        metavar="MMDB",
        help="MaxMind DB file (GeoLite2/GeoIP2/DB-IP City or Country) "
        "(default: the embedded DB-IP City Lite database)",
    )
    serve.add_argument(
        "--geoip-reload-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between checks for a replaced GeoIP file (default: 10)",
    )
    serve.add_argument(
        "--state",
        metavar="FILE",
        help="region states to start from (YAML: service -> region -> "
        "{state, utilization}) (default: every region up)",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        default="127.0.0.1:8053",
        help="admin HTTP (dashboard, API, /metrics) address, or `off` (default: 127.0.0.1:8053)",
    )
    serve.add_argument(
        "--http-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the admin HTTP side answers to in Host: besides its address (and "
        "localhost on loopback), e.g. a reverse proxy's; repeatable. Other names get 421, "
        "against DNS rebinding",
    )
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="also serve GET /metrics alone, read-only, on this address (e.g. 127.0.0.1:9153, "
        "[::1]:9153), for Prometheus to scrape without reaching the admin API (default: off)",
    )
    serve.add_argument(
        "--cookie-secret-file",
        metavar="FILE",
        help="file holding the DNS COOKIE secret, 32 hex digits (16 octets, RFC 9018); every "
        "name server of a fleet needs the same one (default: a random secret per run)",
    )
    serve.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="file holding the bearer token that admin API changes require "
        "(or set GEODNS_ADMIN_TOKEN), named `admin` in the audit log; without any token, "
        "changes are refused",
    )
    serve.add_argument(
        "--admin-tokens-file",
        metavar="FILE",
        help="file of named admin tokens, one `name token` line each (one per person or "
        "pipeline): the audit log says which name made each change (docs/logging.md)",
    )
    serve.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where operator forces, rollouts and seen versions are kept (the embedded store, "
        ".geodns-state.json), or with --store the fleet's state cached for a start without "
        "it (default: the zones directory; point it elsewhere when that is read-only)",
    )
    serve.add_argument(
        "--rollouts-file",
        metavar="FILE",
        help=argparse.SUPPRESS,  # before the store: now --state-dir is this file's directory
    )
    _add_fleet_options(serve)
    _add_rum_options(serve)
    _add_log_options(serve)
    serve.add_argument(
        "--scope-cache",
        metavar="DIR",
        help="where merged ECS scopes are built and kept, or `off` to answer every scope with "
        "the GeoIP network's prefix (default: $XDG_CACHE_HOME/geodns or ~/.cache/geodns)",
    )
    serve.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between looks for changed zone files, 0 to never look (default: 1)",
    )
    serve.add_argument(
        "--no-twins",
        dest="twins",
        action="store_false",
        help="no twin per DNS worker: reloads fork a copy to answer meanwhile, which saves "
        "a second copy of the configuration in memory and costs late replies at each "
        "reload (docs/reload.md) (default: a twin each)",
    )

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run three simulated GPU regions, the DNS server and the dashboard on loopback",
    )
    demo.add_argument(
        "--listen",
        default="127.0.0.1:5300",
        metavar="HOST:PORT",
        help="address to answer DNS on, UDP and TCP (default: %(default)s)",
    )
    demo.add_argument(
        "--http",
        default="127.0.0.1:8053",
        metavar="HOST:PORT",
        help="dashboard and admin API (default: %(default)s)",
    )
    demo.add_argument("--geoip-database", metavar="MMDB", help="as for serve")
    demo.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where forces and rollouts are kept (default: a temporary directory, gone at exit)",
    )
    _add_fleet_options(demo)

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="show how a client's query for a service name is decided",
        description="Ask the running server (its admin API) how it decides a client's query "
        "now, with the regions' live state; with --offline, or when no server answers at the "
        "default address, decide here from the zone files with every region up (or as in "
        "--state FILE). The output says which state it shows.",
    )
    explain.add_argument("name", help="service name, e.g. inference.example.com")
    explain.add_argument("client", help="client address (as ECS or the source would give it)")
    explain.add_argument(
        "--prefix",
        type=int,
        metavar="BITS",
        help="ECS source prefix length, as with dig +subnet=ADDR/PREFIX",
    )
    explain.add_argument(
        "--admin",
        metavar="URL",
        help=f"the running server's admin HTTP address; an error if it does not answer "
        f"(default: {EXPLAIN_ADMIN}, and offline if nothing answers there)",
    )
    explain.add_argument(
        "--offline",
        action="store_true",
        help="do not ask a server: decide from the zone files, every region up unless --state",
    )
    explain.add_argument("--timeout", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    offline = explain.add_argument_group(
        "offline evaluation (any of these means --offline)",
    )
    offline.add_argument(
        "--zones", metavar="PATH", help="zone directory or file (default: as serve)"
    )
    offline.add_argument("--geoip-database", metavar="MMDB", help="as for serve")
    offline.add_argument("--state", metavar="FILE", help="region states, as for serve")
    offline.add_argument(
        "--scope-cache",
        metavar="DIR",
        help="where the server keeps merged ECS scopes (default: as serve), or `off`",
    )
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")

    check = sub.add_parser(
        "check",
        parents=[common],
        help="validate zone files",
        description="Validate zone files, printing every error as FILE:LINE: KEY: PROBLEM (exit "
        "status 2). Without paths, what serve would load: ./zones, else the embedded example "
        "zone, which it says.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        help="zone files or directories (default: as serve, ./zones, else the embedded example)",
    )

    imp = sub.add_parser(
        "import",
        parents=[common],
        help="convert an RFC 1035 master file to a geodns YAML zone",
        description="Convert an RFC 1035 master file to a geodns YAML zone, on stdout. Every "
        "bad record is reported, one line each as FILE:LINE: OWNER TYPE: PROBLEM (exit status "
        "2). A relative $INCLUDE path is read from the directory of the file that names it, as "
        "Knot does, wherever the command runs; an include loop is an error.",
    )
    imp.add_argument("file", help="master file (BIND, NSD or Knot format)")
    imp.add_argument("--origin", metavar="DOMAIN", help="zone origin when the file has no $ORIGIN")

    exp = sub.add_parser(
        "export", parents=[common], help="write a zone's static records as an RFC 1035 master file"
    )
    exp.add_argument("file", help="geodns YAML zone file")
    rollout_cli.add_parser(sub, parents=[common])
    fleetcli.add_parser(sub, parents=[common])
    return parser


def _add_rum_options(parser: argparse.ArgumentParser) -> None:
    """The RUM ingest (POST /api/rum) and how its samples order regions: docs/rum.md."""
    rum = parser.add_argument_group(
        "measured latency", "reports from clients ordering regions (docs/rum.md)"
    )
    rum.add_argument(
        "--rum-token-file",
        metavar="FILE",
        help="file holding the bearer token RUM reports require (or set GEODNS_RUM_TOKEN); "
        "not the admin token, which can drain regions. Without one, reports are refused",
    )
    rum.add_argument(
        "--rum-gateway",
        action="append",
        default=[],
        metavar="CIDR",
        help="senders whose reports may name the clients' network (`client`), e.g. a "
        "gateway's or a beacon collector's address; repeatable (default: none)",
    )
    rum.add_argument(
        "--rum-rate",
        type=float,
        default=2.0,
        metavar="N",
        help="reports per second a reporting address may send on average, with bursts of "
        "20 (default: 2)",
    )
    from geodns.geo.rum import RumSettings

    defaults = RumSettings()
    rum.add_argument(
        "--rum-min-samples",
        type=int,
        default=defaults.min_samples,
        metavar="N",
        help="samples an area needs before its estimate orders regions (default: %(default)s)",
    )
    rum.add_argument(
        "--rum-max-age",
        type=float,
        default=defaults.max_age,
        metavar="S",
        help="seconds a sample counts for (default: %(default)s)",
    )
    rum.add_argument(
        "--rum-stabilize-ms",
        type=float,
        default=defaults.stabilize_ms,
        metavar="MS",
        help="a region moves ahead only when better by more than this AND "
        "--rum-stabilize-percent (default: %(default)s)",
    )
    rum.add_argument(
        "--rum-stabilize-percent",
        type=float,
        default=defaults.stabilize_percent,
        metavar="P",
        help="see --rum-stabilize-ms (default: %(default)s)",
    )
    rum.add_argument(
        "--rum-publish-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between aggregations of new samples into answers (default: %(default)s)",
    )


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    """The query log and the admin side's access log: docs/logging.md."""
    from geodns.server.querylog import DEFAULT_RATE

    logs = parser.add_argument_group("logs", "what is logged besides events (docs/logging.md)")
    logs.add_argument(
        "--query-log",
        action="store_true",
        help="log sampled queries (logger geodns.query): client, ECS, qname, qtype, rcode, "
        "region and decision path (default: off)",
    )
    logs.add_argument(
        "--query-log-rate",
        type=float,
        default=DEFAULT_RATE,
        metavar="N",
        help="at most N query records a second for the whole server, in bursts of N "
        "(default: %(default)g)",
    )
    logs.add_argument(
        "--access-log",
        action="store_true",
        help="log every admin HTTP request (logger aiohttp.access) (default: off)",
    )


def _add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """--store and its companions: for serve, and for demo (a fleet of demos on one machine)."""
    fleet = parser.add_argument_group(
        "fleet", "share control state with other geodns nodes through etcd (docs/fleet.md)"
    )
    fleet.add_argument(
        "--store",
        metavar="URL",
        help="etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS): the fleet's shared store "
        "(default: the embedded store, this node alone)",
    )
    fleet.add_argument(
        "--store-prefix",
        default="/geodns/",
        metavar="PREFIX",
        help="key prefix in etcd, so that several fleets share one etcd (default: /geodns/)",
    )
    fleet.add_argument("--store-cacert", metavar="FILE", help="CA bundle of etcd's server certs")
    fleet.add_argument("--store-cert", metavar="FILE", help="client certificate for etcd")
    fleet.add_argument("--store-key", metavar="FILE", help="client certificate's private key")
    fleet.add_argument("--store-user", metavar="NAME", help="etcd user (etcd auth)")
    fleet.add_argument(
        "--store-password-file",
        metavar="FILE",
        help="file holding the etcd user's password (or set GEODNS_STORE_PASSWORD)",
    )
    fleet.add_argument(
        "--store-timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds an etcd request may take before the next endpoint is tried (default: 2)",
    )
    fleet.add_argument(
        "--node-name",
        metavar="NAME",
        help="this node's name in the fleet, unique per node (default: the host name)",
    )
    fleet.add_argument(
        "--store-lease-ttl",
        type=float,
        metavar="S",
        help="seconds a dead node's registration and health votes outlive it (default: three "
        "of the shortest probe interval, 3 to 30)",
    )
