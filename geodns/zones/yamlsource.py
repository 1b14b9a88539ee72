"""The old home of geodns.yamlsource, kept while branches written before the move (the CLI's,
the key table's) still import it from here; new code imports geodns.yamlsource."""

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
