"""The old home of geodns.yamlsource, kept while code written before the move still imports it
from here (geodns/cli.py, zones/loader.py, services.py, healthspec.py, and
tests/unit/zones/test_masterfile.py, which branches in flight edit; the key table's
zones/keys.py); new code imports geodns.yamlsource. Remove it once they import the new home."""

from geodns.yamlsource import (
    FAST_LOADER,
    PURE_LOADER,
    Document,
    Loader,
    Path,
    format_path,
    load_yaml,
    read_yaml_file,
)

__all__ = [
    "FAST_LOADER",
    "PURE_LOADER",
    "Document",
    "Loader",
    "Path",
    "format_path",
    "load_yaml",
    "read_yaml_file",
]
