"""Reconciliation of PSP settlement reports against payments and the ledger: ingest, ports,
runner, adapters, proto mapping and the CLI (`python -m services.payments.reconciliation`)."""
