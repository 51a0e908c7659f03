"""Events backbone: transactional outbox → relay → Pub/Sub → consumer with inbox (ADR 0006)."""
