"""Zones: YAML files in, validated immutable zones out, and the lookup that answers from them."""
