"""The geodns exception tree.

    GeodnsError
      ConfigError         one problem in a zone file: "zones/x.yaml:14: records.www.A[1]: ..."
        ConfigErrors      every problem found in one load, reported together
      MalformedQuery      a query that cannot be parsed (the server answers FORMERR or drops it)
        ShortHeader       fewer than 12 bytes: nothing to answer to, dropped
        BadQuestion       the question section is missing, truncated or has a bad name
        BadEDNS           OPT record malformed, or more than one
        BadECS            EDNS Client Subnet option malformed (RFC 7871 section 6)
        BadCookie         DNS COOKIE option of a length RFC 7873 5.2.2 rules out
        BadTSIG           TSIG record malformed, not last, or not alone (RFC 8945 5.2)
        TrailingJunk      bytes after the last record the header announced
      GeoIPDatabaseError  a GeoIP database file is missing, unreadable, or has no country/city data

Errors of one subsystem live in its module and derive from a class here (catch them by
their own name; `except GeodnsError` catches them all):

      QueryError          wire.query: a MalformedQuery with what could be read, for FORMERR
      BadReport           geo.rumformat: a latency report not in the RUM report format
      MissingEnv          health.probes: a check's header names an unset variable (a failed probe)
      UnknownRegion       health.monitor: no such service or region (HTTP 404); also a KeyError
      RolloutRefused      versions.rollout: the guard's rules forbid it; str() says why (HTTP 409)
        RolloutConflict   control.rollouts: the state kept changing under a decision: retry
      RolloutNotFound     versions.rollout: no rollout, or no such region in it (HTTP 404);
                          also a LookupError
      CliError            versions.cli: `geodns rollout`/`fleet` exit 2 with this message
      StoreUnavailable    store.kv: the shared store cannot be reached or did not answer
        WatchCompacted    store.kv: a watch asked for compacted revisions: list again
      ResolutionError     client.resolve: a service's regions could not be resolved
      AllRegionsFailed    client.failover: every region was tried and none answered

A few private exceptions (`_Stop`, `_Failed`, `_Failure`) are control flow inside one module
and never escape it. DNS outcomes (NXDOMAIN, REFUSED, ...) are `dns.rcode.Rcode` values,
never exceptions.
"""

from __future__ import annotations


class GeodnsError(Exception):
    """Base of every geodns error."""


class ConfigError(GeodnsError):
    """One problem in a configuration or zone file, located by file, line and key."""

    def __init__(self, message: str, file: str = "", line: int = 0, key: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.key, self.message) if p]
        return ": ".join(parts)


class ConfigErrors(ConfigError):
    """Every problem found while loading a configuration, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class MalformedQuery(GeodnsError):
    """The query cannot be parsed."""


class ShortHeader(MalformedQuery):
    """The packet is shorter than a DNS header."""


class BadQuestion(MalformedQuery):
    """The question section is missing, truncated or holds a bad name."""


class BadEDNS(MalformedQuery):
    """The OPT record is malformed, or there is more than one."""


class BadECS(MalformedQuery):
    """The EDNS Client Subnet option is malformed (RFC 7871 section 6)."""


class BadCookie(MalformedQuery):
    """The COOKIE option is shorter than a client cookie, or of no valid length (RFC 7873 5.2.2)."""


class BadTSIG(MalformedQuery):
    """The TSIG record is malformed, not the last record, or not the only one (RFC 8945 5.2)."""


class TrailingJunk(MalformedQuery):
    """Bytes follow the last record the header announced."""


class GeoIPDatabaseError(GeodnsError):
    """A GeoIP database file is missing, unreadable, not a MaxMind DB, or has no country data."""
