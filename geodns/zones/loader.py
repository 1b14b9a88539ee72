"""Zone files into a ZoneSet: the files a directory holds, each one read and built (the
building is geodns/zones/zonebuild.py), every error of every file reported at once."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from pathlib import Path as FsPath

import dns.name

from geodns.errors import ConfigError, ConfigErrors
from geodns.yamlsource import Document, parse_yaml_text, read_text_file
from geodns.zones.model import Zone, ZoneSet, ZoneTexts
from geodns.zones.zonebuild import ZoneBuilder


def load_zones(paths: Iterable[str | os.PathLike[str]]) -> ZoneSet:
    """Load every zone file named (directories give their *.yaml / *.yml files); the
    ZoneSet keeps the texts it was built from (ZoneTexts).

    Raises ConfigErrors with every problem in every file when anything is wrong.
    """
    paths = list(paths)
    files = list(zone_files(paths))
    if not files:
        raise ConfigErrors([ConfigError("no zone files found", ", ".join(map(str, paths)))])
    return _without_collector(_build_zone_set, files, _read_zone_file)


def load_zone_texts(texts: ZoneTexts) -> ZoneSet:
    """The zones `texts` were read for, built again from them: the same ZoneSet as the
    load that read them, whatever the files hold now."""
    recorded = {file: (text, mtime) for file, text, mtime in texts.files}
    return _without_collector(_build_zone_set, list(recorded), recorded.__getitem__)


def _without_collector(build: Callable[..., ZoneSet], *args: object) -> ZoneSet:
    # A zone of 10,000 records is some 200,000 new objects and no reference cycles: the
    # collector, triggered every 700 allocations, would walk them again and again while
    # they are made (a quarter of the load's CPU in a server, half in a fresh process).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return build(*args)
    finally:
        if collecting:
            gc.enable()


def _build_zone_set(files: list[str], read: Callable[[str], tuple[str, int]]) -> ZoneSet:
    errors: list[ConfigError] = []
    zones: dict[dns.name.Name, Zone] = {}
    seen: dict[dns.name.Name, str] = {}
    texts: list[tuple[str, str, int]] = []
    for file in files:
        try:
            text, mtime = read(file)
            zone = build_zone(parse_yaml_text(text, file), default_serial=mtime)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        if zone.origin in seen:
            errors.append(
                ConfigError(
                    f"duplicate zone {zone.origin}: already defined in {seen[zone.origin]}",
                    zone.file,
                    1,
                    "zone",
                )
            )
            continue
        seen[zone.origin] = zone.file
        zones[zone.origin] = zone
        texts.append((file, text, mtime))
    if errors:
        raise ConfigErrors(errors)
    return ZoneSet(zones, ZoneTexts(tuple(texts)))


def zone_files(paths: Iterable[str | os.PathLike[str]]) -> Iterable[str]:
    """The zone files the paths name: a directory gives its *.yaml / *.yml files, sorted."""
    for p in paths:
        path = FsPath(p)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix in (".yaml", ".yml") and child.is_file():
                    yield str(child)
        else:
            yield str(path)


def load_zone_file(file: str | os.PathLike[str]) -> Zone:
    """One zone file's Zone; `serial: auto` is its modification time."""
    name = os.fspath(file)
    text, mtime = _read_zone_file(name)
    return build_zone(parse_yaml_text(text, name), default_serial=mtime)


def _read_zone_file(file: str) -> tuple[str, int]:
    text = read_text_file(file)
    try:
        mtime = int(os.stat(file).st_mtime)
    except OSError as exc:
        raise ConfigErrors([ConfigError(exc.strerror or str(exc), file)]) from exc
    return text, mtime


def build_zone(doc: Document, default_serial: int = 1) -> Zone:
    """Validate a parsed document and build its Zone, or raise ConfigErrors with every problem."""
    return ZoneBuilder(doc, default_serial).build()
