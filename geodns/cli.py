"""The `geodns` command: serve, demo, explain, rollout, fleet, check, import, export."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from geodns import __version__, fleetcli
from geodns.cliout import quiet_on_broken_pipe
from geodns.errors import ConfigError, ConfigErrors, GeodnsError
from geodns.health.state import ALL_UP, load_state_file
from geodns.logformat import FORMATS, setup_logging
from geodns.versions import cli as rollout_cli
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone, load_zone_file, load_zones
from geodns.zones.model import ZoneSet

# Commands import what only they use inside their functions (the server, aiohttp, the admin
# app, etcd): start-up time, so that `geodns check` or `geodns rollout` does not load them.
log = logging.getLogger("geodns")

EXIT_CONFIG = 2  # invalid zones or arguments, as argparse does for usage errors
EXPLAIN_ADMIN = "http://127.0.0.1:8053"  # `serve --http`'s default, where explain looks first


def _embedded_zones() -> Path:
    return Path(str(resources.files("geodns") / "example"))


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


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return {
            "serve": _serve,
            "check": _check,
            "import": _import,
            "export": _export,
            "explain": _explain,
            "demo": _demo,
            "rollout": rollout_cli.run,
            "fleet": fleetcli.run,
        }[args.command](args)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_CONFIG
    except GeodnsError as exc:
        print(f"geodns: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _demo(args: argparse.Namespace) -> int:
    import secrets
    import shutil
    import tempfile

    from geodns.demo.setup import REGIONS, demo_zone_text, free_ports
    from geodns.server.sockets import ListenAddress, parse_listen

    listen = parse_listen(args.listen)
    if listen.port == 0:
        listen = ListenAddress(listen.host, free_ports(1, listen.host)[0])
    ports = dict(zip([name for name, _ in REGIONS], free_ports(len(REGIONS)), strict=True))
    workdir = Path(tempfile.mkdtemp(prefix="geodns-demo-"))
    zones_dir = workdir / "zones"
    zones_dir.mkdir()
    (zones_dir / "example.com.yaml").write_text(demo_zone_text(ports))
    serve_args = build_parser().parse_args(["serve"])
    serve_args.zones = str(zones_dir)
    serve_args.listen = [str(listen)]
    # --http, --geoip-database, --state-dir and the fleet's options mean what they mean to serve.
    for option, value in vars(args).items():
        if option not in ("command", "listen") and hasattr(serve_args, option):
            setattr(serve_args, option, value)
    token = _admin_token(serve_args) or secrets.token_urlsafe(12)
    # Measured latency on, for the load script it prints: its own token, and 127.0.0.0/8
    # trusted to report for other client networks (the script stands in for clients in
    # a country), aggregated every second instead of 5 so that answers move visibly.
    if not serve_args.rum_token_file and not os.environ.get("GEODNS_RUM_TOKEN"):
        serve_args.rum_token_file = str(workdir / "rum-token")
        Path(serve_args.rum_token_file).write_text(secrets.token_urlsafe(12) + "\n")
    if not serve_args.rum_gateway:
        serve_args.rum_gateway = ["127.0.0.0/8"]
    serve_args.rum_publish_interval = min(serve_args.rum_publish_interval, 1.0)
    try:
        return _serve(serve_args, demo=(ports, token))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _serve(args: argparse.Namespace, demo: tuple[dict[str, int], str] | None = None) -> int:
    from geodns.admin.app import AdminServer
    from geodns.control.plane import ControlPlane
    from geodns.control.zonesource import ZoneSource
    from geodns.server.answer import ServerOptions
    from geodns.server.geoanswer import open_geoip
    from geodns.server.rrl import RRLConfig, parse_exempt
    from geodns.server.run import ServeConfig, run
    from geodns.server.sockets import parse_listen
    from geodns.wire.cookie import ServerCookies

    if args.workers < 1:
        raise GeodnsError("--workers must be at least 1")
    if not 512 <= args.udp_size <= 65535:
        raise GeodnsError("--udp-size must be between 512 and 65535")
    if not args.query_log_rate > 0:
        raise GeodnsError("--query-log-rate must be more than 0 records a second")
    # Before anything is loaded: a bad tokens file is a start-up error like a bad flag.
    token = _admin_token(args) if demo is None else demo[1]
    tokens = _admin_tokens(args, token)
    rrl = RRLConfig(
        rate=args.rrl_rate,
        slip=args.rrl_slip,
        ipv4_prefix=args.rrl_ipv4_prefix,
        ipv6_prefix=args.rrl_ipv6_prefix,
        exempt=parse_exempt(args.rrl_exempt),
    )
    # One secret for every worker (they are forked with it), so that a cookie one worker
    # gave is valid at the next.
    cookie_secret = _cookie_secret(args.cookie_secret_file)
    cookies = ServerCookies(cookie_secret)
    zones = _load_zones(args.zones)
    for zone in zones.zones.values():
        log.info(
            "loaded zone %s from %s (%d names, %d services)",
            zone.origin,
            zone.file,
            len(zone.nodes),
            len(zone.services),
        )
    listen = [parse_listen(x) for x in (args.listen or ["127.0.0.1:5300"])]
    state = load_state_file(args.state, zones) if args.state else ALL_UP
    geoip = open_geoip(args.geoip_database)
    server_id = socket.gethostname() if args.server_id is None else args.server_id
    zones_path = _zones_path(args.zones)
    plane = ControlPlane(
        ZoneSource(zones_path),
        zones,
        geoip,
        state,
        watch_interval=args.watch_interval,
        state_dir=_state_dir(args),
        store=_store(args),
        node=_node_name(args.node_name),
        node_dns=tuple(str(a) for a in listen),
        node_http=None if args.http == "off" else args.http,
        lease_ttl=args.store_lease_ttl,
        rollouts_file=Path(args.rollouts_file) if args.rollouts_file else None,
        scope_cache=_scope_cache(args.scope_cache),
        rum_config=_rum_config(args),
    )
    regions = None
    if demo is not None:
        from geodns.demo.setup import DemoRegions

        regions = DemoRegions(demo[0])
        plane.prerequisites.append(regions)
    admin = None
    if args.http != "off":
        admin = AdminServer(
            plane,
            parse_listen(args.http),
            tokens,
            demo=regions,
            host_names=tuple(args.http_host),
            access_log=args.access_log,
        )
        plane.attachments.append(admin)
    if args.metrics is not None:
        from geodns.admin.metrics import registry_for
        from geodns.admin.scrape import MetricsServer, parse_metrics_listen

        # The admin side's registry when there is one, so that both give the same families.
        registry = admin.app.registry if admin is not None else registry_for(plane)
        plane.attachments.append(MetricsServer(parse_metrics_listen(args.metrics), registry))
    if regions is not None:
        from geodns.demo.setup import DemoBanner

        plane.attachments.append(
            DemoBanner(
                listen[0],
                None if admin is None else admin.url,
                token,
                zones_path,
                regions,
                plane.rum.config.token,
            )
        )
    config = ServeConfig(
        zones=zones,
        listen=listen,
        workers=args.workers,
        options=ServerOptions(
            udp_size=args.udp_size, server_id=server_id, cookie_secret=cookie_secret
        ),
        tcp_idle_timeout=args.tcp_idle_timeout,
        tcp_max_connections=args.tcp_max_connections,
        state=state,
        geoip=geoip,
        geoip_reload_interval=args.geoip_reload_interval,
        rrl=rrl,
        # A query with a valid server cookie has answered us from its address before:
        # its source is not spoofed, so rate limiting spares it (RFC 7873 5.2.4).
        rrl_exempt=lambda query, peer: cookies.has_valid_server_cookie_untrusted(query, peer[0]),
        query_log_rate=args.query_log_rate if args.query_log else None,
    )
    try:
        return run(config, plane)
    except OSError as exc:
        raise GeodnsError(f"cannot listen: {exc}") from exc


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


def _rum_config(args: argparse.Namespace) -> Any:
    """The RumConfig the flags give (geodns.control.rum)."""
    import ipaddress

    from geodns.control.rum import TOKEN_ENV, RumConfig
    from geodns.geo.rum import RumSettings

    token = None
    if args.rum_token_file:
        try:
            token = Path(args.rum_token_file).read_text().strip()
        except OSError as exc:
            raise GeodnsError(f"--rum-token-file {args.rum_token_file}: {exc.strerror}") from None
        if not token:
            raise GeodnsError(f"--rum-token-file {args.rum_token_file}: the file is empty")
    token = token or os.environ.get(TOKEN_ENV) or None
    gateways = []
    for text in args.rum_gateway:
        try:
            gateways.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise GeodnsError(f"--rum-gateway {text}: {exc}") from None
    try:
        settings = RumSettings(
            min_samples=args.rum_min_samples,
            max_age=args.rum_max_age,
            stabilize_ms=args.rum_stabilize_ms,
            stabilize_percent=args.rum_stabilize_percent,
            window=max(RumSettings().window, args.rum_min_samples),
        )
    except ValueError as exc:
        raise GeodnsError(f"--rum-*: {exc}") from None
    if args.rum_rate <= 0 or args.rum_publish_interval <= 0:
        raise GeodnsError("--rum-rate and --rum-publish-interval must be positive")
    return RumConfig(
        token,
        tuple(gateways),
        rate=args.rum_rate,
        publish_interval=args.rum_publish_interval,
        settings=settings,
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


def _state_dir(args: argparse.Namespace) -> Path | None:
    if args.state_dir:
        return Path(args.state_dir)
    if args.rollouts_file:
        log.warning(
            "--rollouts-file is replaced by --state-dir: using %s", Path(args.rollouts_file).parent
        )
        return Path(args.rollouts_file).parent
    return None


def _store(args: argparse.Namespace) -> Any:
    """The fleet's etcd store from the --store options, or None for the embedded one."""
    if not args.store:
        tls = (args.store_cacert, args.store_cert, args.store_key, args.store_user)
        if any(tls) or args.store_password_file:
            raise GeodnsError("the --store-* options need --store etcd://HOST:PORT")
        return None
    from geodns.store.etcd import EtcdOptions, EtcdStore, parse_store_url

    try:
        endpoints = parse_store_url(args.store)
    except ValueError as exc:
        raise GeodnsError(f"--store {args.store}: {exc}") from None
    password = os.environ.get("GEODNS_STORE_PASSWORD")
    if args.store_password_file:
        try:
            password = Path(args.store_password_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise GeodnsError(f"--store-password-file {args.store_password_file}: {exc}") from None
    if (args.store_user is None) != (password is None):
        raise GeodnsError(
            "etcd auth needs both --store-user and a password (--store-password-file or"
            " GEODNS_STORE_PASSWORD)"
        )
    if (args.store_cert is None) != (args.store_key is None):
        raise GeodnsError("--store-cert and --store-key go together")
    for flag in ("store_cacert", "store_cert", "store_key"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise GeodnsError(f"--{flag.replace('_', '-')} {path}: no such file")
    if args.store_timeout <= 0:
        raise GeodnsError("--store-timeout must be more than 0 seconds")
    return EtcdStore(
        EtcdOptions(
            endpoints=endpoints,
            prefix=args.store_prefix,
            cacert=args.store_cacert,
            cert=args.store_cert,
            key=args.store_key,
            user=args.store_user,
            password=password,
            timeout=args.store_timeout,
        )
    )


def _node_name(option: str | None) -> str:
    name = option if option is not None else socket.gethostname()
    if not name or "/" in name or not name.isprintable() or len(name) > 253:
        raise GeodnsError(f"--node-name {name!r}: a name without '/' of 1 to 253 characters")
    return name


def _cookie_secret(path: str | None) -> bytes:
    """The secret in `path` (hex, as NSD's and BIND's cookie-secret), else a random one."""
    from geodns.wire.cookie import SECRET_SIZE

    if path is None:
        return os.urandom(SECRET_SIZE)
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise GeodnsError(f"--cookie-secret-file {path}: {exc}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != SECRET_SIZE:
        raise GeodnsError(
            f"--cookie-secret-file {path}: expected {2 * SECRET_SIZE} hex digits"
            f" ({SECRET_SIZE} octets), e.g. from `openssl rand -hex {SECRET_SIZE}`"
        )
    return secret


def _zones_path(option: str | None, quiet: bool = True) -> Path:
    if option:
        zones_path = Path(option)
        if not zones_path.exists():
            raise GeodnsError(f"--zones {option}: no such file or directory")
    elif Path("zones").is_dir():
        zones_path = Path("zones")
    else:
        zones_path = _embedded_zones()
        if not quiet:
            log.warning("no ./zones directory: using the embedded example zone from %s", zones_path)
    return zones_path


def _load_zones(option: str | None) -> ZoneSet:
    return load_zones([_zones_path(option, quiet=False)])


def _scope_cache(option: str | None) -> str | None:
    from geodns.control.scopebuild import default_cache_dir

    if option == "off":
        return None
    return option or default_cache_dir()


def _admin_token(args: argparse.Namespace) -> str | None:
    import os

    from geodns.admin.app import TOKEN_ENV

    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text().strip()
        except OSError as exc:
            raise GeodnsError(
                f"--admin-token-file {args.admin_token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise GeodnsError(f"--admin-token-file {args.admin_token_file}: the file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _admin_tokens(args: argparse.Namespace, single: str | None) -> Any:
    """The AdminTokens of --admin-tokens-file and the single token (named `admin`), or
    None when there are none."""
    from geodns.admin.tokens import AdminTokens, load_tokens_file, merge

    path = getattr(args, "admin_tokens_file", None)
    named = load_tokens_file(path) if path else {}
    tokens = merge(named, single, path or "--admin-token-file")
    if not tokens:
        return None
    log.info("admin API tokens: %s", ", ".join(sorted(tokens)))
    return AdminTokens(tokens)


def _explain(args: argparse.Namespace) -> int:
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

    zones = _load_zones(args.zones)
    state = load_state_file(args.state, zones) if args.state else ALL_UP
    # Not open_geoip: its start-up warning about the embedded database would come with every
    # explanation; the state line says it instead, when that database located the client.
    geo = GeoAnswers(zones, state, GeoIPDatabase(args.geoip_database))
    cache = _scope_cache(args.scope_cache)
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


def _check(args: argparse.Namespace) -> int:
    # Without paths, what `serve` would load, the embedded example when there is no ./zones,
    # said the same way.
    paths = args.paths or [_zones_path(None, quiet=False)]
    zones = load_zones(paths)
    for zone in zones.zones.values():
        rrsets = sum(len(node) for node in zone.nodes.values())
        print(
            f"{zone.file}: zone {zone.origin} ok ({rrsets} RRsets, {len(zone.services)} services)"
        )
    return 0


def _import(args: argparse.Namespace) -> int:
    from geodns.zones.masterfile import import_master_file

    try:
        text = import_master_file(args.file, args.origin)
    except ConfigError as exc:
        if isinstance(exc, ConfigErrors):
            raise
        raise ConfigErrors([exc]) from exc
    # A master file can hold what geodns refuses (data under a delegation, CNAME and other
    # data together): say so now rather than write a zone that `serve` would reject.
    try:
        build_zone(load_yaml(text, f"{args.file} (as YAML)"))
    except ConfigErrors as exc:
        print(f"{args.file}: the imported zone does not validate:", file=sys.stderr)
        raise exc from None
    sys.stdout.write(text)
    return 0


def _export(args: argparse.Namespace) -> int:
    from geodns.zones.masterfile import export_master_file

    zone = load_zone_file(args.file)
    sys.stdout.write(export_master_file(zone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
