"""Ledger settings: COMMERCE_LEDGER_* with the documented defaults; bad values fail fast."""

import pytest
from pydantic import ValidationError

from services.ledger.config import LedgerSettings


def test_settings_come_from_the_ledger_prefix_with_port_50051_by_default(monkeypatch):
    monkeypatch.setenv("COMMERCE_LEDGER_AUTH__KEY", "a-secret")
    monkeypatch.setenv("COMMERCE_LEDGER_HOLD_SWEEP_INTERVAL_SECONDS", "2.5")
    settings = LedgerSettings()
    assert (settings.port, settings.hold_sweep_interval_seconds) == (50051, 2.5)
    assert settings.auth.verification_key() == "a-secret"


def test_a_malformed_value_fails_at_start(monkeypatch):
    monkeypatch.setenv("COMMERCE_LEDGER_AUTH__KEY", "a-secret")
    monkeypatch.setenv("COMMERCE_LEDGER_HOLD_SWEEP_BATCH", "0")
    with pytest.raises(ValidationError):
        LedgerSettings()
