"""Feeding the monitoring stack a team already runs: Prometheus (prometheus.py) and
OpenTelemetry over OTLP/HTTP (otel.py). Both are record listeners: they run after a
record is committed, off the request path, and never see text unless configured."""
