"""The ledger service: append-only double entry with holds, idempotency and a hash chain."""
