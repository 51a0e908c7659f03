"""Ledger throughput beside the same PostgreSQL's pgbench TPC-B: `python -m bench.ledger`."""
