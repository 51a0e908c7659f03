"""Settlement and fee journal entries for reconciled settlement lines, as pure data.

Only lines that tie out (or PSP fee lines) are booked; each entry's id derives from the PSP and
the settled operation, so rerunning a reconciliation never posts twice.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from services.payments.domain.reconciliation import (
    PaymentOperation,
    Reconciliation,
    SettlementRecord,
    record_order,
)

_ENTRY_ID_NAMESPACE = uuid.UUID("6f1c7a52-3a43-4f4e-9a55-0f7b5c0e2d13")
"""Namespace of the deterministic UUIDs used as ledger request ids for settlement entries."""


@dataclass(frozen=True, slots=True)
class SettlementAccounts:
    """The ledger accounts (resource names) of one currency that settlement postings touch."""

    psp_clearing: str
    """Asset: money the PSP owes us; captures debit it, refunds credit it."""
    bank: str
    """Asset: the bank account the PSP pays out to."""
    psp_fees: str
    """Expense: fees the PSP keeps."""


@dataclass(frozen=True, slots=True)
class JournalPosting:
    """One leg of a journal entry: positive debits, negative credits (the ledger's rule)."""

    account: str
    amount_minor: int
    currency: str
    memo: str


class SettlementEntryKind(enum.StrEnum):
    SETTLEMENT = "settlement"
    """Net of the line moves from PSP clearing to the bank (or back, for refunds)."""
    FEE = "fee"
    """The PSP's fee moves from PSP clearing to the fee expense."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementJournalEntry:
    """A journal entry to post for a settled line, idempotent by `entry_id`.

    `entry_id` and `request_id` derive from the PSP and the settled operation only (not the
    run, not the amounts): whatever run posts it, however often, the ledger keeps one entry.
    """

    entry_id: str
    request_id: str
    kind: SettlementEntryKind
    description: str
    settlement_date: date
    postings: tuple[JournalPosting, ...]
    metadata: Mapping[str, str]


class MissingAccountsError(ValueError):
    """Settlement postings were asked for in a currency with no configured accounts."""

    def __init__(self, currencies: Iterable[str]) -> None:
        self.currencies = tuple(sorted(currencies))
        super().__init__(f"no settlement accounts for {', '.join(self.currencies)}")


def settlement_entry_id(psp: str, record: SettlementRecord, kind: SettlementEntryKind) -> str:
    """`stl-…` / `fee-…`: stable per PSP and settled operation; fits the ledger's id rules."""
    identity = "\x1f".join((psp, *record.identity))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
    prefix = "stl" if kind is SettlementEntryKind.SETTLEMENT else "fee"
    return f"{prefix}-{digest}"


def _entry(
    psp: str,
    record: SettlementRecord,
    kind: SettlementEntryKind,
    legs: tuple[tuple[str, int], tuple[str, int]],
    operation: PaymentOperation | None,
) -> SettlementJournalEntry:
    entry_id = settlement_entry_id(psp, record, kind)
    what = "settlement" if kind is SettlementEntryKind.SETTLEMENT else "fee"
    metadata = {
        "psp": psp,
        "operation": what,
        "settlement_record": record.record_id,
        "settlement_type": record.type.value,
    }
    if record.psp_reference:
        metadata["psp_reference"] = record.psp_reference
    if operation is not None:
        metadata["payment"] = operation.payment
        metadata["payment_operation"] = operation.operation_id
    memo = f"{psp} {record.type.value} {record.psp_reference or record.record_id}"
    return SettlementJournalEntry(
        entry_id=entry_id,
        request_id=str(uuid.uuid5(_ENTRY_ID_NAMESPACE, entry_id)),
        kind=kind,
        description=f"{psp} {what} of line {record.record_id} ({record.settlement_date})",
        settlement_date=record.settlement_date,
        postings=tuple(
            JournalPosting(account, amount, record.currency, memo) for account, amount in legs
        ),
        metadata=metadata,
    )


def _entries_for(
    psp: str,
    record: SettlementRecord,
    accounts: SettlementAccounts,
    operation: PaymentOperation | None,
) -> list[SettlementJournalEntry]:
    entries = []
    if record.net_minor:
        legs = ((accounts.bank, record.net_minor), (accounts.psp_clearing, -record.net_minor))
        entries.append(_entry(psp, record, SettlementEntryKind.SETTLEMENT, legs, operation))
    if record.fee_minor:
        legs = ((accounts.psp_fees, record.fee_minor), (accounts.psp_clearing, -record.fee_minor))
        entries.append(_entry(psp, record, SettlementEntryKind.FEE, legs, operation))
    return entries


def plan_settlement_entries(
    result: Reconciliation, accounts: Mapping[str, SettlementAccounts]
) -> tuple[SettlementJournalEntry, ...]:
    """The journal entries that book what the PSP settled, for lines safe to book.

    Safe means: the operation ties out on all three sides (so PSP clearing was debited by the
    capture or credited by the refund exactly once), or the line is a PSP fee line. For each
    such line: the net moves between PSP clearing and the bank, the fee from PSP clearing to
    the fee expense; together they clear the line's gross from PSP clearing. Lines with any
    difference are left for a person to resolve.
    """
    to_book: list[tuple[SettlementRecord, PaymentOperation | None]] = [
        (m.record, m.operation) for m in result.matched
    ]
    to_book += [(record, None) for record in result.fee_records]
    missing = {r.currency for r, _ in to_book} - set(accounts)
    if missing:
        raise MissingAccountsError(missing)
    planned: list[SettlementJournalEntry] = []
    for record, operation in sorted(to_book, key=lambda pair: record_order(pair[0])):
        planned += _entries_for(result.psp, record, accounts[record.currency], operation)
    return tuple(planned)
