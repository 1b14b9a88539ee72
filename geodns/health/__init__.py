"""Region health: immutable state snapshots that the DNS path reads without locks."""
