"""Payments orchestration: the payment state machine, PSP connectors, the PSP sandbox."""
