"""YAML data files (country groups, latency tables): where the shipped ones are, and reading."""

from __future__ import annotations

import os
from importlib import resources

from geodns.errors import ConfigErrors
from geodns.yamlsource import Document, read_yaml_file


def shipped(name: str) -> str:
    """The path of a file shipped in geodns/data/."""
    return str(resources.files("geodns") / "data" / name)


def read_document(path: str | os.PathLike[str]) -> Document:
    """Parse a YAML data file, or raise ConfigErrors naming the file (and line, if it has one)."""
    doc = read_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise ConfigErrors([doc.error((), "expected a mapping at the top level")])
    return doc
