"""YAML data files (country groups, latency tables): where the shipped ones are, and reading."""

from __future__ import annotations

import os
from importlib import resources

from geodns.errors import ConfigError, ConfigErrors
from geodns.zones.yamlsource import Document, load_yaml


def shipped(name: str) -> str:
    """The path of a file shipped in geodns/data/."""
    return str(resources.files("geodns") / "data" / name)


def read_document(path: str | os.PathLike[str]) -> Document:
    """Parse a YAML data file, or raise ConfigErrors naming the file (and line, if it has one)."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigErrors([ConfigError(exc.strerror or str(exc), file)]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(f"not UTF-8 text: {exc.reason}", file)]) from exc
    try:
        doc = load_yaml(text, file)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from exc
    if not isinstance(doc.data, dict):
        raise ConfigErrors([doc.error((), "expected a mapping at the top level")])
    return doc
