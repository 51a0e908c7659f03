"""Holds finalize once and count against limits; accounts close only when empty."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.errors import DomainError
from services.ledger.domain.accounts import Account, AccountSpec, AccountType, Balance
from services.ledger.domain.holds import Hold, HoldState
from services.ledger.domain.money import fits_int64

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def account(account_id, kind=AccountType.ASSET, **flags):
    return Account(
        "acme",
        account_id,
        AccountSpec(account_id.upper(), account_id, "USD", kind, **flags),
        NOW,
        NOW,
    )


def hold(amount=100):
    return Hold("acme", "h", "wallet", "merchant", "USD", amount, NOW + timedelta(days=1), NOW, NOW)


def reason(call):
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value.reason


@pytest.fixture
def parties():
    wallet = account("wallet", AccountType.LIABILITY, debits_must_not_exceed_credits=True)
    wallet.balance = Balance(credits_posted=150)
    return wallet, account("merchant", AccountType.LIABILITY)


def test_a_hold_reserves_against_the_limit(parties):
    wallet, merchant = parties
    hold(100).reserve(wallet, merchant)
    assert wallet.balance.available(debit_normal=False) == 50
    assert reason(lambda: hold(51).reserve(wallet, merchant)) == "INSUFFICIENT_FUNDS"
    assert wallet.balance.debits_pending == 100


def test_a_partial_post_releases_the_rest_and_returns_the_moving_entry(parties):
    wallet, merchant = parties
    h = hold(100)
    h.reserve(wallet, merchant)
    draft = h.post(wallet, merchant, 60, entry_id="e1", description="", now=NOW, trace=h.trace)
    assert h.state is HoldState.POSTED
    assert [(p.account_id, p.amount) for p in draft.postings] == [("wallet", 60), ("merchant", -60)]
    assert wallet.balance.debits_pending == 0
    assert reason(lambda: h.void(wallet, merchant, "", NOW)) == "HOLD_ALREADY_FINALIZED"
    assert reason(lambda: h.expire(wallet, merchant, NOW)) == "HOLD_ALREADY_FINALIZED"


def test_posting_more_than_held_or_after_expiry_is_refused(parties):
    wallet, merchant = parties
    h = hold(100)
    h.reserve(wallet, merchant)
    assert (
        reason(
            lambda: h.post(
                wallet, merchant, 101, entry_id="e", description="", now=NOW, trace=h.trace
            )
        )
        == "HOLD_AMOUNT_EXCEEDED"
    )
    later = NOW + timedelta(days=2)
    assert (
        reason(
            lambda: h.post(
                wallet, merchant, 1, entry_id="e", description="", now=later, trace=h.trace
            )
        )
        == "HOLD_ALREADY_FINALIZED"
    )
    h.expire(wallet, merchant, later)
    assert h.state is HoldState.EXPIRED
    assert wallet.balance.debits_pending == 0


def test_an_account_closes_only_when_empty_and_its_etag_matches():
    cash = account("cash")
    cash.balance = Balance(debits_posted=5)
    assert reason(lambda: cash.close(NOW)) == "ACCOUNT_BALANCE_NOT_ZERO"
    cash.balance = Balance(debits_pending=5)
    assert reason(lambda: cash.close(NOW)) == "ACCOUNT_HAS_PENDING_HOLDS"
    cash.balance = Balance(debits_posted=5, credits_posted=5)
    assert reason(lambda: cash.close(NOW, etag="v9")) == "ETAG_MISMATCH"
    assert cash.close(NOW, etag="v1")
    assert not cash.close(NOW)  # closing a closed account changes nothing


def test_balances_read_in_the_normal_direction():
    balance = Balance(debits_posted=100, credits_posted=30, debits_pending=5, credits_pending=7)
    assert (balance.posted(debit_normal=True), balance.posted(debit_normal=False)) == (70, -70)
    assert balance.available(debit_normal=True) == 63
    assert balance.available(debit_normal=False) == -75


_counter = (
    st.integers(-3, 3)
    | st.integers(2**62 - 3, 2**62 + 3)
    | st.integers(2**63 - 3, 2**63 + 3)
    | st.integers(-(2**64), 2**64)
)


@given(_counter, _counter, _counter, _counter, _counter)
def test_balance_arithmetic_is_replace_of_one_counter_and_fits_is_the_int64_range(
    dp, cp, dpe, cpe, amount
):
    b = Balance(dp, cp, dpe, cpe)
    if amount > 0:
        assert b.post(amount) == replace(b, debits_posted=dp + amount)
        assert b.reserve(amount) == replace(b, debits_pending=dpe + amount)
        assert b.release(amount) == replace(b, debits_pending=dpe - amount)
    else:
        assert b.post(amount) == replace(b, credits_posted=cp - amount)
        assert b.reserve(amount) == replace(b, credits_pending=cpe - amount)
        assert b.release(amount) == replace(b, credits_pending=cpe + amount)
    counters = (dp, cp, dpe, cpe, dp + dpe, cp + cpe)
    assert b.fits() == all(v >= 0 and fits_int64(v) for v in counters)
