"""geodns: an authoritative GeoDNS server for AI inference traffic."""

from importlib.metadata import PackageNotFoundError, version

# One version, pyproject.toml's: what pip installed is what `geodns --version`, CH TXT
# version.bind and the fleet's node records say.
try:
    __version__ = version("geodns")
except PackageNotFoundError:  # a source tree run without being installed
    __version__ = "0+unknown"
