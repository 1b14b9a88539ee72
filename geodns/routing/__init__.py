"""Routing: pure steps from (client, service, state) to an ordered list of regions."""
