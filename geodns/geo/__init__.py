"""Geography: GeoIP lookups, the client locator, country groups and the latency table."""
