"""The JSON Schema of zone YAML files, shipped as package data for editors and tests.

The file is generated from the key declaration (geodns/zones/keys.py) by
`python -m geodns.zones.keys --write`; edit the declaration, not the file.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


def zone_schema() -> dict[str, Any]:
    """The zone file JSON Schema (draft 2020-12) as a fresh dict that the caller may change."""
    return json.loads(_schema_text())


@functools.cache
def _schema_text() -> str:
    # Read through importlib.resources so that it also works from a wheel or zip.
    schema = resources.files("geodns").joinpath("schema").joinpath("zone.schema.json")
    return schema.read_text(encoding="utf-8")
