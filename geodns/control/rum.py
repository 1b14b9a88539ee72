"""The RUM ingest: reports from clients (POST /api/rum) into the aggregator, with the
checks that keep it cheap to run: its own token, trusted gateways, a rate per reporting
address, and the counts /metrics shows. The HTTP route is geodns.admin.app's; the format
is geodns.geo.rumformat's; the estimates are geodns.geo.rum's."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from geodns.geo.geoip import GeoRecord
from geodns.geo.rum import Aggregator, MeasuredLatency, RumSettings, network_of
from geodns.geo.rumformat import BadReport, parse_report_untrusted
from geodns.tokenbucket import TokenBucket

log = logging.getLogger("geodns.rum")

TOKEN_ENV = "GEODNS_RUM_TOKEN"
RATE_ADDRESSES = 10_000  # reporting addresses whose rate is tracked; beyond: the oldest go
# Closed label sets for /metrics.
REPORT_RESULTS = (
    "accepted",
    "off",
    "unauthorized",
    "too_large",
    "malformed",
    "too_many_samples",
    "bad_value",
    "bad_client",
    "untrusted_client",
    "rate_limited",
)
SAMPLE_RESULTS = ("accepted", "unknown_region", "stale", "full")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Locate = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], GeoRecord | None]


@dataclass(frozen=True)
class RumConfig:
    token: str | None = None  # None: the ingest is off (403)
    gateways: tuple[IPNetwork, ...] = ()  # senders whose reports may name a `client`
    rate: float = 2.0  # reports per second per reporting address, on average
    burst: float = 20.0  # reports a reporting address may send at once
    publish_interval: float = 5.0  # seconds between aggregations into the state
    settings: RumSettings = field(default_factory=RumSettings)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str  # one of REPORT_RESULTS
    message: str


class RumIngest:
    """Checks reports and feeds their samples to one Aggregator."""

    def __init__(self, config: RumConfig, locate: Locate, regions: Callable[[], Iterable[str]]):
        self.config = config
        self.aggregator = Aggregator(config.settings)
        self._locate = locate
        self._regions = regions  # every region name of the zones: other samples are dropped
        self._rates: dict[str, TokenBucket] = {}
        self.reports: Counter[str] = Counter({r: 0 for r in REPORT_RESULTS})
        self.samples: Counter[str] = Counter({r: 0 for r in SAMPLE_RESULTS})

    def authorized(self, header: str) -> Refusal | None:
        token = self.config.token
        if token is None:
            why = f"RUM ingest is off: no RUM token (--rum-token-file FILE or {TOKEN_ENV})"
            return self._refuse(403, "off", why)
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return self._refuse(401, "unauthorized", "a valid RUM bearer token is required")
        return None

    def admit(self, sender: str, now: float) -> Refusal | None:
        """The sender's rate: a token bucket per reporting address."""
        bucket = self._rates.pop(sender, None)  # re-inserted: the dict's order is recency
        rate, burst = self.config.rate, self.config.burst
        if bucket is None:
            if len(self._rates) >= RATE_ADDRESSES:
                self._rates.pop(next(iter(self._rates)))
            bucket = TokenBucket(rate, burst, now)
        self._rates[sender] = bucket
        if not bucket.take(now):
            return self._refuse(429, "rate_limited", f"at most {rate:g} reports/s per address")
        return None

    def ingest(self, body: bytes, sender: str, now: float) -> tuple[Refusal | None, int]:
        """Parse and count one report from `sender` (already authorized and admitted): a
        refusal, or None and the number of samples accepted."""
        try:
            report = parse_report_untrusted(body, now)
        except BadReport as exc:
            status = 413 if exc.reason == "too_large" else 400
            return self._refuse(status, exc.reason, str(exc)), 0
        try:
            address = ipaddress.ip_address(sender.split("%")[0])
        except ValueError:
            return self._refuse(400, "bad_client", f"cannot read the sender {sender!r}"), 0
        if report.client is not None:
            if not any(address in net for net in self.config.gateways):
                return self._refuse(
                    403,
                    "untrusted_client",
                    f"{sender} is not a trusted gateway (--rum-gateway): a report from it"
                    " cannot name another client",
                ), 0
            address = report.client.network_address
        record = self._locate(address)
        country = record.country if record is not None else None
        continent = record.continent if record is not None else None
        network = network_of(address)
        known = set(self._regions())
        accepted = 0
        for sample in report.samples:
            if sample.region not in known:
                result = "unknown_region"
            else:
                result = self.aggregator.add(network, country, continent, sample, now)
            self.samples[result] += 1
            accepted += result == "accepted"
        self.reports["accepted"] += 1
        return None, accepted

    def table(self, now: float) -> MeasuredLatency:
        return self.aggregator.table(now)

    def _refuse(self, status: int, reason: str, message: str) -> Refusal:
        self.reports[reason] += 1
        log.debug("RUM report refused (%s): %s", reason, message)
        return Refusal(status, reason, message)
