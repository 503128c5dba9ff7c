"""The event store: an append-only, hash-chained log plus projections kept in step."""
