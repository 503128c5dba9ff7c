"""Read-only evidence collectors (Prometheus, Docker, HTTP probe) and target resolution."""
