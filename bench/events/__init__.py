"""Events backbone benchmark: outbox → relay → Pub/Sub → consumer lag, and relay publish rate."""
