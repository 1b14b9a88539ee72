"""Model versions across regions: the rolling-update guard (rollout core, store, guard, CLI)."""
