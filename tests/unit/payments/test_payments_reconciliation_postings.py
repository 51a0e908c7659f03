"""Settlement and fee entries for reconciled lines: exact legs, stable ids, only safe lines."""

from __future__ import annotations

from datetime import date

import pytest

from services.payments.domain.reconciliation import (
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    RecordType,
    SettlementRecord,
    reconcile,
)
from services.payments.domain.reconciliation_postings import (
    JournalPosting,
    MissingAccountsError,
    SettlementAccounts,
    SettlementEntryKind,
    plan_settlement_entries,
    settlement_entry_id,
)

DAY = date(2026, 11, 20)
USD = SettlementAccounts(psp_clearing="clearing", bank="bank", psp_fees="fees")


def op(n: int, kind: OperationKind, minor: int) -> PaymentOperation:
    return PaymentOperation(
        operation_id=f"op-{n}",
        kind=kind,
        payment=f"tenants/acme/payments/p{n}",
        payment_reference=f"auth_{n}",
        psp_reference=f"ref_{n}",
        amount_minor=minor,
        currency="USD",
    )


def line(n: int, kind: RecordType, gross: int, fee: int) -> SettlementRecord:
    return SettlementRecord(
        record_id=f"sl_{n}",
        line_number=n + 1,
        settlement_date=DAY,
        type=kind,
        psp_reference=f"ref_{n}" if kind is not RecordType.FEE else "",
        payment_reference=f"auth_{n}" if kind is not RecordType.FEE else "",
        currency="USD",
        gross_minor=gross,
        fee_minor=fee,
        net_minor=gross - fee,
    )


def entry(o: PaymentOperation) -> LedgerEntry:
    return LedgerEntry(
        entry=f"tenants/acme/entries/{o.operation_id}",
        operation_id=o.operation_id,
        kind=o.kind,
        payment=o.payment,
        amount_minor=o.amount_minor,
        currency="USD",
    )


def test_a_capture_settles_its_net_to_the_bank_and_its_fee_to_the_fee_expense():
    capture = op(1, OperationKind.CAPTURE, 10_000)
    result = reconcile(
        psp="sandbox",
        records=[line(1, RecordType.CAPTURE, 10_000, 320)],
        operations=[capture],
        ledger_entries=[entry(capture)],
    )
    settlement, fee = plan_settlement_entries(result, {"USD": USD})
    memo = "sandbox capture ref_1"
    assert settlement.kind is SettlementEntryKind.SETTLEMENT
    assert settlement.postings == (
        JournalPosting("bank", 9_680, "USD", memo),
        JournalPosting("clearing", -9_680, "USD", memo),
    )
    assert fee.postings == (
        JournalPosting("fees", 320, "USD", memo),
        JournalPosting("clearing", -320, "USD", memo),
    )
    assert settlement.metadata["payment_operation"] == "op-1"
    assert settlement.metadata["operation"] == "settlement"
    assert settlement.entry_id.startswith("stl-")
    assert fee.entry_id.startswith("fee-")
    assert len(settlement.entry_id) <= 64


def test_a_refund_moves_money_back_from_the_bank_and_has_no_fee_entry():
    refund = op(2, OperationKind.REFUND, 2_500)
    result = reconcile(
        psp="sandbox",
        records=[line(2, RecordType.REFUND, -2_500, 0)],
        operations=[refund],
        ledger_entries=[entry(refund)],
    )
    [settlement] = plan_settlement_entries(result, {"USD": USD})
    assert [(p.account, p.amount_minor) for p in settlement.postings] == [
        ("bank", -2_500),
        ("clearing", 2_500),
    ]


def test_lines_with_any_difference_are_not_booked_but_fee_lines_are():
    capture = op(1, OperationKind.CAPTURE, 10_000)
    unbooked = op(3, OperationKind.CAPTURE, 500)  # no ledger entry: clearing never debited
    result = reconcile(
        psp="sandbox",
        records=[
            line(1, RecordType.CAPTURE, 10_001, 320),
            line(3, RecordType.CAPTURE, 500, 44),
            line(9, RecordType.FEE, 0, 1_500),
        ],
        operations=[capture, unbooked],
        ledger_entries=[entry(capture)],
    )
    planned = plan_settlement_entries(result, {"USD": USD})
    assert {e.metadata["settlement_record"] for e in planned} == {"sl_9"}
    assert sum(p.amount_minor for e in planned for p in e.postings if p.account == "bank") == -1_500


def test_entry_ids_depend_on_the_psp_and_the_settled_operation_only():
    first = line(1, RecordType.CAPTURE, 10_000, 320)
    again = line(1, RecordType.CAPTURE, 10_000, 999)
    kind = SettlementEntryKind.SETTLEMENT
    assert settlement_entry_id("sandbox", first, kind) == settlement_entry_id(
        "sandbox", again, kind
    )
    assert settlement_entry_id("stripe", first, kind) != settlement_entry_id("sandbox", first, kind)
    fee = settlement_entry_id("sandbox", first, SettlementEntryKind.FEE)
    assert fee != settlement_entry_id("sandbox", first, kind)


def test_booking_a_currency_without_accounts_is_refused():
    capture = op(1, OperationKind.CAPTURE, 10_000)
    result = reconcile(
        psp="sandbox",
        records=[line(1, RecordType.CAPTURE, 10_000, 320)],
        operations=[capture],
        ledger_entries=[entry(capture)],
    )
    with pytest.raises(MissingAccountsError) as raised:
        plan_settlement_entries(result, {"EUR": USD})
    assert raised.value.currencies == ("USD",)
