"""The errors of one zone document, collected so that a load reports all of them at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from geodns.errors import ConfigError, ConfigErrors
from geodns.yamlsource import Document, Path
from geodns.zones import keys


class Collector:
    """Gathers the errors of one document, each as `file:line: key: problem`, and lends the
    checks of plain values that report into it (what keys.py, services.py and healthspec.py
    are given as their error sink)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[ConfigError] = []

    def add(self, path: Path, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    add_error = add  # the name the validators in keys.py, services.py and healthspec.py call

    def fail(self) -> ConfigErrors:
        """Every error gathered, in the order of the file's lines."""
        return ConfigErrors(sorted(self.errors, key=lambda e: e.line))

    def unknown_keys(self, path: Path, spec: dict[str, Any], allowed: Iterable[str]) -> None:
        allowed = frozenset(allowed)
        for key in spec:
            if key not in allowed:
                self.add((*path, key), keys.unknown_key(key, allowed))

    def ttl_value(self, path: Path, value: Any, default: int) -> int:
        ttl = keys.TTL.parse(self, path, value)
        return default if ttl is None else ttl

    def int_value(self, path: Path, value: Any, low: int, high: int, what: str) -> int | None:
        return keys.Int(low, high, what).parse(self, path, value)
