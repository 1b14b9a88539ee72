"""The admin HTTP side: dashboard, JSON API, Prometheus metrics."""
