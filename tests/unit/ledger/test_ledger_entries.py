"""Entries balance per currency, fit int64, and apply to open accounts within their limits."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.chassis.errors import DomainError
from services.ledger.domain.accounts import Account, AccountSpec, AccountState, AccountType
from services.ledger.domain.entries import (
    ChainLink,
    EntryDraft,
    JournalEntry,
    Posting,
    TraceLink,
    apply_entry,
    check_balanced,
    reversal_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MAX = 2**63 - 1


def account(account_id, kind=AccountType.ASSET, currency="USD", **flags):
    spec = AccountSpec(account_id.upper(), account_id, currency, kind, **flags)
    return Account("acme", account_id, spec, NOW, NOW)


def reason(call):
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value.reason


def entry(*legs, currency="USD"):
    return EntryDraft("e", tuple(Posting(a, currency, amount) for a, amount in legs))


def test_postings_must_net_to_zero_in_every_currency():
    check_balanced([Posting("a", "USD", 5), Posting("b", "USD", -5)])
    assert reason(lambda: check_balanced([Posting("a", "USD", 5), Posting("b", "USD", -4)])) == (
        "ENTRY_UNBALANCED"
    )
    mixed = [Posting("a", "USD", 5), Posting("b", "EUR", -5)]
    assert reason(lambda: check_balanced(mixed)) == "ENTRY_UNBALANCED"


def test_amounts_that_cannot_be_counted_in_int64_overflow():
    assert reason(
        lambda: check_balanced([Posting("a", "USD", -(2**63)), Posting("b", "USD", 2**63)])
    ) == ("AMOUNT_OVERFLOW")
    same_account = [
        Posting("a", "USD", MAX),
        Posting("a", "USD", MAX),
        Posting("b", "USD", -MAX),
        Posting("b", "USD", -MAX),
    ]
    assert reason(lambda: check_balanced(same_account)) == "AMOUNT_OVERFLOW"


def test_applying_checks_existence_currency_state_and_limits_and_changes_nothing_on_failure():
    books = {
        "cash": account("cash"),
        "eur": account("eur", currency="EUR"),
        "wallet": account("wallet", AccountType.LIABILITY, debits_must_not_exceed_credits=True),
        "closed": account("closed"),
    }
    books["closed"].state = AccountState.CLOSED
    assert reason(lambda: apply_entry("acme", books, entry(("cash", 1), ("nope", -1)))) == (
        "ACCOUNT_NOT_FOUND"
    )
    assert reason(lambda: apply_entry("acme", books, entry(("cash", 1), ("eur", -1)))) == (
        "CURRENCY_MISMATCH"
    )
    assert reason(lambda: apply_entry("acme", books, entry(("cash", 1), ("closed", -1)))) == (
        "ACCOUNT_CLOSED"
    )
    assert reason(lambda: apply_entry("acme", books, entry(("wallet", 1), ("cash", -1)))) == (
        "INSUFFICIENT_FUNDS"
    )
    assert books["cash"].balance.debits_posted == books["cash"].balance.credits_posted == 0
    apply_entry("acme", books, entry(("cash", 7), ("wallet", -7)))
    assert books["wallet"].balance.posted(debit_normal=False) == 7
    assert books["cash"].balance.posted(debit_normal=True) == 7


def test_a_balance_past_int64_is_a_balance_overflow():
    books = {"a": account("a"), "b": account("b")}
    apply_entry("acme", books, entry(("a", MAX), ("b", -MAX)))
    assert reason(lambda: apply_entry("acme", books, entry(("a", 1), ("b", -1)))) == (
        "BALANCE_OVERFLOW"
    )
    assert books["a"].balance.debits_posted == MAX


def committed(draft, reversed_by=None):
    return JournalEntry("acme", draft, ChainLink(1, b"", b"", NOW), reversed_by)


def test_a_reversal_negates_every_posting_and_is_refused_twice_or_on_a_reversal():
    original = committed(entry(("a", 5), ("b", -5)))
    reversal = reversal_of(original, "r", "typo", {}, TraceLink())
    assert [p.amount for p in reversal.postings] == [-5, 5]
    assert reversal.reverses == "e"
    assert reason(
        lambda: reversal_of(committed(original.draft, "r"), "x", "", {}, TraceLink())
    ) == ("ENTRY_ALREADY_REVERSED")
    assert reason(lambda: reversal_of(committed(reversal), "x", "", {}, TraceLink())) == (
        "ENTRY_IS_REVERSAL"
    )


def test_with_id_is_replace_of_the_id_keeping_every_other_field():
    full = EntryDraft(
        "",
        (Posting("cash", "USD", 5, "m"), Posting("sales", "USD", -5)),
        description="d",
        metadata={"k": "v"},
        effective_time=datetime(2026, 1, 1, tzinfo=UTC),
        reverses="e0",
        hold="h1",
        trace=TraceLink("a" * 32, "b" * 16),
    )
    assert set(EntryDraft.__dataclass_fields__) == {
        "entry_id", "postings", "description", "metadata", "effective_time", "reverses",
        "hold", "trace",
    }  # fmt: skip  # a new field must be added to `with_id` too
    assert full.with_id("e9") == replace(full, entry_id="e9")
