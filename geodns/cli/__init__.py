"""The `geodns` command: serve, demo, explain, rollout, fleet, check, import, export.

Commands import what only they use inside their functions (the server, aiohttp, the admin
app, etcd): start-up time, so that `geodns check` or `geodns rollout` does not load them."""

from __future__ import annotations

import sys

from geodns import fleetcli
from geodns.cli.explain import run_explain
from geodns.cli.parser import build_parser
from geodns.cli.serve import run_demo, run_serve
from geodns.cli.zonefiles import run_check, run_export, run_import
from geodns.cliout import quiet_on_broken_pipe
from geodns.errors import ConfigErrors, GeodnsError
from geodns.logformat import setup_logging
from geodns.versions import cli as rollout_cli

__all__ = ["EXIT_CONFIG", "build_parser", "main"]

EXIT_CONFIG = 2  # invalid zones or arguments, as argparse does for usage errors


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return {
            "serve": run_serve,
            "check": run_check,
            "import": run_import,
            "export": run_export,
            "explain": run_explain,
            "demo": run_demo,
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
