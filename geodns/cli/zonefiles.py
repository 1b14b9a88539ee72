"""Zone files from the command line: where `serve` and `check` find them, and `geodns check`,
`import` and `export`."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

from geodns.errors import ConfigError, ConfigErrors, GeodnsError
from geodns.yamlsource import load_yaml
from geodns.zones.loader import build_zone, load_zone_file, load_zones
from geodns.zones.model import ZoneSet

log = logging.getLogger("geodns")


def _embedded_zones() -> Path:
    return Path(str(resources.files("geodns") / "example"))


def find_zones(option: str | None, quiet: bool = True) -> Path:
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


def load_zones_at(option: str | None) -> ZoneSet:
    return load_zones([find_zones(option, quiet=False)])


def run_check(args: argparse.Namespace) -> int:
    # Without paths, what `serve` would load, the embedded example when there is no ./zones,
    # said the same way.
    paths = args.paths or [find_zones(None, quiet=False)]
    zones = load_zones(paths)
    for zone in zones.zones.values():
        rrsets = sum(len(node) for node in zone.nodes.values())
        print(
            f"{zone.file}: zone {zone.origin} ok ({rrsets} RRsets, {len(zone.services)} services)"
        )
    return 0


def run_import(args: argparse.Namespace) -> int:
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


def run_export(args: argparse.Namespace) -> int:
    from geodns.zones.masterfile import export_master_file

    zone = load_zone_file(args.file)
    sys.stdout.write(export_master_file(zone))
    return 0
