"""The sandbox processor's books and knobs: the rules its HTTP answers come from."""

from datetime import UTC, date, datetime

import pytest

from services.payments.sandbox.books import Books, SandboxError, capture_fee
from services.payments.sandbox.config import ConfigError, SandboxConfig
from services.payments.sandbox.settlement import COLUMNS, render_csv
from services.payments.sandbox.tokens import TEST_TOKENS, TokenBehaviour, behaviour_of

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def authorize(books, amount=10_000, decline=""):
    return books.authorize(
        amount_minor=amount,
        currency="EUR",
        idempotency_key="k",
        capture=False,
        description="",
        decline_code=decline,
        now=NOW,
    )


def test_partial_captures_then_a_final_one_settle_each_with_its_fee():
    books = Books()
    auth = authorize(books)
    books.capture(auth.id, 4_000, final=False, now=NOW)
    assert auth.status == "partially_captured"
    books.capture(auth.id, 1_000, final=True, now=NOW)
    assert auth.status == "captured"
    assert [(e.gross_minor, e.fee_minor) for e in books.settlement] == [
        (4_000, capture_fee(4_000)),
        (1_000, capture_fee(1_000)),
    ]
    assert capture_fee(4_000) == 30 + 116


def test_capture_beyond_the_authorization_is_refused():
    books = Books()
    auth = authorize(books)
    with pytest.raises(SandboxError) as raised:
        books.capture(auth.id, 10_001, final=False, now=NOW)
    assert (raised.value.status, raised.value.code) == (422, "amount_exceeded")


def test_refunds_sum_at_most_to_the_captured_amount():
    books = Books()
    auth = authorize(books)
    books.capture(auth.id, None, final=True, now=NOW)
    books.refund(auth.id, 6_000, NOW)
    books.refund(auth.id, None, NOW)
    assert auth.amount_refunded_minor == 10_000
    with pytest.raises(SandboxError):
        books.refund(auth.id, 1, NOW)


def test_void_releases_an_authorization_or_the_rest_of_a_partial_capture():
    books = Books()
    untouched, partial = authorize(books), authorize(books)
    books.capture(partial.id, 1, final=False, now=NOW)
    assert books.void(untouched.id).status == "voided"
    assert books.void(partial.id).status == "captured"
    with pytest.raises(SandboxError):
        books.void(untouched.id)


def test_declined_authorizations_cannot_be_captured():
    books = Books()
    auth = authorize(books, decline="do_not_honor")
    with pytest.raises(SandboxError) as raised:
        books.capture(auth.id, None, final=True, now=NOW)
    assert raised.value.code == "invalid_state"


def test_unknown_authorization_is_not_found():
    with pytest.raises(SandboxError) as raised:
        Books().authorization("sbx_auth_missing")
    assert raised.value.status == 404


def test_settlement_csv_lists_lines_of_the_period_only():
    books = Books()
    auth = authorize(books)
    books.capture(auth.id, None, final=True, now=NOW)
    books.refund(auth.id, 250, NOW)
    rows = render_csv(books.settlement_between(date(2026, 11, 21), date(2026, 11, 21)))
    lines = rows.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1].endswith(f",EUR,10000,{capture_fee(10_000)},{10_000 - capture_fee(10_000)}")
    assert lines[2].endswith(",EUR,-250,0,-250")
    assert books.settlement_between(date(2026, 11, 22), date(2026, 11, 30)) == []


def test_documented_test_tokens_and_unknown_tokens_approve():
    assert behaviour_of("pm_sandbox_timeout") is TokenBehaviour.SLOW
    assert behaviour_of("pm_something_else") is TokenBehaviour.APPROVE
    assert set(TEST_TOKENS) >= {"pm_sandbox_ok", "pm_sandbox_decline", "pm_sandbox_retry_once"}


@pytest.mark.parametrize(
    "changes",
    [
        {"latency_ms": -1},
        {"error_rate": 1.5},
        {"timeout_seconds": 601},
        {"webhook_url": "http://example.com/hook"},
        {"webhook_url": "ftp://127.0.0.1/hook"},
        {"unknown": 1},
        {"latency_ms": True},
    ],
)
def test_knobs_out_of_range_or_off_loopback_are_refused(changes):
    with pytest.raises(ConfigError):
        SandboxConfig().updated(changes)


def test_knobs_update_and_read_from_env(monkeypatch):
    updated = SandboxConfig().updated({"latency_ms": 5, "webhook_url": "http://127.0.0.1:9/h"})
    assert updated.as_json()["latency_ms"] == 5
    monkeypatch.setenv("SANDBOX_ERROR_RATE", "0.25")
    assert SandboxConfig.from_env().error_rate == 0.25
