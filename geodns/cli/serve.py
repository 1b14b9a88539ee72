"""`geodns serve` and `geodns demo`: from options to a running server, its control plane
and admin side."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path
from typing import Any

from geodns.cli.parser import build_parser
from geodns.cli.zonefiles import find_zones, load_zones_at
from geodns.errors import GeodnsError
from geodns.health.state import ALL_UP, load_state_file

log = logging.getLogger("geodns")


def run_demo(args: argparse.Namespace) -> int:
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
        return run_serve(serve_args, demo=(ports, token))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_serve(args: argparse.Namespace, demo: tuple[dict[str, int], str] | None = None) -> int:
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
    zones = load_zones_at(args.zones)
    _log_loaded(zones)
    listen = [parse_listen(x) for x in (args.listen or ["127.0.0.1:5300"])]
    state = load_state_file(args.state, zones) if args.state else ALL_UP
    geoip = open_geoip(args.geoip_database)
    server_id = socket.gethostname() if args.server_id is None else args.server_id
    zones_path = find_zones(args.zones)
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
        scope_cache=scope_cache_option(args.scope_cache),
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
        twins=args.twins,
    )
    del zones  # the config and the control plane hold them, until a reload replaces them
    try:
        return run(config, plane)
    except OSError as exc:
        raise GeodnsError(f"cannot listen: {exc}") from exc


def _log_loaded(zones: Any) -> None:
    # A function of its own: a loop variable in run_serve would hold the last zone for the
    # process's life, after a reload has replaced it.
    for zone in zones.zones.values():
        log.info(
            "loaded zone %s from %s (%d names, %d services)",
            zone.origin,
            zone.file,
            len(zone.nodes),
            len(zone.services),
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


def scope_cache_option(option: str | None) -> str | None:
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
