"""geodns: an authoritative GeoDNS server for AI inference traffic."""

__version__ = "0.1.0"
