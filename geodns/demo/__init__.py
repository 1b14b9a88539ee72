"""Simulated GPU regions for tests and demos: small aiohttp apps whose health you set."""
