"""geodns.client: call a geodns service's regions in order, failing over faster than the TTL.

    from geodns.client import BreakerConfig, FailoverClient

    async with FailoverClient(
        "inference.example.com", nameservers=["127.0.0.1"], dns_port=5300, scheme="http",
        breaker=BreakerConfig(failures=2, cooldown=5.0), request_timeout=2.0,
    ) as client:
        response = await client.request("GET", "/v1/models")
        print(response.status, response.json(), client.last_choice.reason)

See docs/client.md.
"""

from geodns.client.breaker import BreakerConfig, BreakerState, CircuitBreaker
from geodns.client.failover import (
    DEFAULT_FAILURE_STATUSES,
    AllRegionsFailed,
    Choice,
    FailoverClient,
    Response,
)
from geodns.client.resolve import Endpoint, Resolution, ResolutionError
from geodns.client.rum import RumReporter

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "AllRegionsFailed",
    "BreakerConfig",
    "BreakerState",
    "Choice",
    "CircuitBreaker",
    "Endpoint",
    "FailoverClient",
    "Resolution",
    "ResolutionError",
    "Response",
    "RumReporter",
]
