"""A small HTTP service for demos and end-to-end tests: Prometheus metrics plus injectable
faults (crash, hang, errors, latency, memory leak). Standard library and prometheus-client only.
Run it with ``python3 -m demo_target``; see ``demo_target.app`` for the endpoints."""

__version__ = "1.0.0"
