"""Checkout settings: the deployment's environment names, and bad values failing at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.checkout.config import CheckoutSettings


def test_reads_the_names_the_manifests_use(monkeypatch):
    monkeypatch.setenv("COMMERCE_CHECKOUT_PORT", "50053")
    monkeypatch.setenv("COMMERCE_CHECKOUT_PAYMENTS_ADDR", "payments:50052")
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__KEY", "k" * 32)
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__ALGORITHMS", '["HS256"]')
    monkeypatch.setenv("COMMERCE_CHECKOUT_SAGA__LEASE_SECONDS", "5")
    monkeypatch.setenv("COMMERCE_CHECKOUT_WORKER__HEALTH_PORT", "50060")
    settings = CheckoutSettings()
    assert (settings.port, settings.payments_addr) == (50053, "payments:50052")
    assert settings.saga.lease_seconds == 5
    assert settings.worker.health_port == 50060
    assert settings.crash_at is None


def test_an_unknown_crash_point_fails_at_start(monkeypatch):
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__KEY", "k" * 32)
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__ALGORITHMS", '["HS256"]')
    monkeypatch.setenv("COMMERCE_CHECKOUT_CRASH_AT", "capture.during")
    with pytest.raises(ValidationError, match="crash_at"):
        CheckoutSettings()


def test_an_out_of_range_saga_setting_fails_at_start(monkeypatch):
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__KEY", "k" * 32)
    monkeypatch.setenv("COMMERCE_CHECKOUT_AUTH__ALGORITHMS", '["HS256"]')
    monkeypatch.setenv("COMMERCE_CHECKOUT_SAGA__MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError):
        CheckoutSettings()
