"""Every zone the loader accepts during the tests must also pass the generated JSON Schema.

tests/conftest.py watches the loader in the test process (each zone it builds without an
error is checked after the test) and the zone files of every server it starts, so that a
key the validation takes and the schema does not (the drift of issue 15, item 4) fails
the test that used it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema

from geodns.errors import ConfigErrors
from geodns.yamlsource import Document
from geodns.zones import loader, zonebuild
from geodns.zones.schema import zone_schema

# The large zones of the load tests are the same few keys, repeated: checked by the small ones.
MAX_LINES = 5000
MAX_BYTES = 256 * 1024


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(zone_schema())


def schema_errors(doc: Document) -> list[str]:
    """The schema's complaints about a document, each as `file:line: path: message`."""
    out = []
    for error in _validator().iter_errors(doc.data):
        path = tuple(error.absolute_path)
        out.append(f"{doc.file}:{doc.line(path)}: {'.'.join(map(str, path))}: {error.message}")
    return out


@contextmanager
def watch_loader() -> Iterator[list[Document]]:
    """Collect the documents the loader builds into zones while the block runs."""
    built: list[Document] = []
    original = zonebuild.ZoneBuilder.build

    def build(self: Any) -> Any:
        zone = original(self)
        if len(self.doc.lines) <= MAX_LINES:
            built.append(self.doc)
        return zone

    zonebuild.ZoneBuilder.build = build  # type: ignore[method-assign]
    try:
        yield built
    finally:
        zonebuild.ZoneBuilder.build = original  # type: ignore[method-assign]


def check_zone_files(path: Path | str) -> list[str]:
    """The schema's complaints about the zone files under `path` that the loader accepts."""
    out = []
    for file in loader.zone_files([path]):
        if Path(file).is_file() and Path(file).stat().st_size > MAX_BYTES:
            continue  # a load-test zone: loading it twice would only slow the test
        try:
            with watch_loader() as built:
                loader.load_zone_file(file)
        except ConfigErrors:
            continue  # a test of a broken zone: the loader's errors are its subject
        for doc in built:
            out += schema_errors(doc)
    return out
