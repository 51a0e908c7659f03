"""PostgreSQL storage of checkouts, orders, saga steps, idempotency keys and the outbox."""
