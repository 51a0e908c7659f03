"""Reconciliation matching: the acceptance case, every difference kind, and the partition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.payments.domain.reconciliation import (
    Amount,
    DifferenceKind,
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    RecordType,
    SettlementRecord,
    Side,
    reconcile,
)

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
TENANT = "tenants/acme"


def capture(n: int, amount: int, currency: str = "USD") -> PaymentOperation:
    return PaymentOperation(
        operation_id=f"cap-{n}",
        kind=OperationKind.CAPTURE,
        payment=f"{TENANT}/payments/p{n}",
        payment_reference=f"sbx_auth_{n}",
        amount_minor=amount,
        currency=currency,
        occurred_at=T0 + timedelta(minutes=n),
    )


def refund(n: int, amount: int, currency: str = "USD") -> PaymentOperation:
    return PaymentOperation(
        operation_id=f"{TENANT}/payments/p{n}/refunds/r{n}",
        kind=OperationKind.REFUND,
        payment=f"{TENANT}/payments/p{n}",
        refund=f"{TENANT}/payments/p{n}/refunds/r{n}",
        payment_reference=f"sbx_auth_{n}",
        psp_reference=f"sbx_re_{n}",
        amount_minor=amount,
        currency=currency,
        occurred_at=T0 + timedelta(hours=1, minutes=n),
    )


def line(line_no: int, op: PaymentOperation, gross: int | None = None) -> SettlementRecord:
    amount = op.signed.minor if gross is None else gross
    fee = 30 + amount * 290 // 10_000 if op.kind is OperationKind.CAPTURE else 0
    return SettlementRecord(
        record_id=f"sl_{line_no:08d}",
        line_number=line_no + 1,
        settlement_date=DAY,
        type=RecordType(op.kind.value),
        psp_reference=op.psp_reference or f"sbx_cap_{op.operation_id}",
        payment_reference=op.payment_reference,
        currency=op.currency,
        gross_minor=amount,
        fee_minor=fee,
        net_minor=amount - fee,
    )


def entry(op: PaymentOperation, amount: int | None = None, n: int = 0) -> LedgerEntry:
    return LedgerEntry(
        entry=f"{TENANT}/entries/{op.operation_id.rsplit('/', 1)[-1]}-{n}",
        operation_id=op.operation_id,
        kind=op.kind,
        payment=op.payment,
        refund=op.refund,
        amount_minor=op.amount_minor if amount is None else amount,
        currency=op.currency,
    )


def book() -> tuple[list[PaymentOperation], list[SettlementRecord], list[LedgerEntry]]:
    ops = [capture(1, 10_000), capture(2, 2_550), capture(3, 999), refund(1, 2_500), capture(4, 1)]
    return ops, [line(i, op) for i, op in enumerate(ops, 1)], [entry(op) for op in ops]


def test_a_clean_book_ties_out_on_all_three_sides():
    ops, records, entries = book()
    result = reconcile(psp="sandbox", records=records, operations=ops, ledger_entries=entries)
    assert result.differences == ()
    assert result.matched_count == len(ops)
    total = result.totals[0]
    assert (total.currency, total.payments_minor) == ("USD", 10_000 + 2_550 + 999 - 2_500 + 1)
    assert total.payments_minor == total.settlement_minor == total.ledger_minor


def test_acceptance_one_missing_one_duplicated_one_off_by_a_cent_finds_exactly_those_three():
    ops, records, entries = book()
    missing = records.pop(1)  # capture 2 never settled
    records.append(records[0])  # capture 1's line appears twice
    records[2] = line(4, ops[3], gross=-2_501)  # the refund settled one cent more
    result = reconcile(psp="sandbox", records=records, operations=ops, ledger_entries=entries)

    found = {(d.kind, d.source, d.payment, d.settlement_record_id) for d in result.differences}
    assert found == {
        (DifferenceKind.MISSING_IN_PSP, Side.SETTLEMENT_REPORT, f"{TENANT}/payments/p2", ""),
        (
            DifferenceKind.DUPLICATE,
            Side.SETTLEMENT_REPORT,
            f"{TENANT}/payments/p1",
            records[0].record_id,
        ),
        (
            DifferenceKind.AMOUNT_MISMATCH,
            Side.SETTLEMENT_REPORT,
            f"{TENANT}/payments/p1",
            "sl_00000004",
        ),
    }
    by_kind = {d.kind: d for d in result.differences}
    assert by_kind[DifferenceKind.MISSING_IN_PSP].expected == Amount(2_550, "USD")
    assert by_kind[DifferenceKind.MISSING_IN_PSP].actual is None
    assert missing.record_id not in {r.record_id for r in records}
    duplicate = by_kind[DifferenceKind.DUPLICATE]
    assert (duplicate.occurrences, duplicate.actual) == (2, Amount(10_000, "USD"))
    assert duplicate.expected == Amount(10_000, "USD")  # payments' capture it settles twice
    mismatch = by_kind[DifferenceKind.AMOUNT_MISMATCH]
    assert (mismatch.expected, mismatch.actual) == (Amount(-2_500, "USD"), Amount(-2_501, "USD"))
    assert mismatch.refund == f"{TENANT}/payments/p1/refunds/r1"
    assert mismatch.psp_reference == "sbx_re_1"
    assert "off by -1" in mismatch.description
    assert result.matched_count == 3  # captures 1, 3 and 4
    assert result.difference_count == 3


def test_a_settlement_line_nobody_recorded_is_missing_in_payments():
    ops, records, entries = book()
    stranger = capture(9, 4_200)
    records.append(line(9, stranger))
    result = reconcile(psp="sandbox", records=records, operations=ops, ledger_entries=entries)
    [difference] = result.differences
    assert difference.kind is DifferenceKind.MISSING_IN_PAYMENTS
    assert difference.source is Side.SETTLEMENT_REPORT
    assert (difference.expected, difference.actual) == (None, Amount(4_200, "USD"))
    assert difference.settlement_record_id == "sl_00000009"
    assert difference.payment == ""


def test_ledger_differences_missing_duplicate_mismatch_and_orphan():
    ops, records, entries = book()
    entries = [
        entries[0],
        entry(ops[0], n=1),  # capture 1 booked twice
        entry(ops[1], amount=2_549),  # capture 2 booked one cent short
        # capture 3 never booked
        entries[3],
        entries[4],
        LedgerEntry(
            entry=f"{TENANT}/entries/orphan",
            operation_id="",
            kind=OperationKind.CAPTURE,
            payment="",
            amount_minor=77,
            currency="USD",
        ),
    ]
    result = reconcile(psp="sandbox", records=records, operations=ops, ledger_entries=entries)
    found = {(d.kind, d.source, d.payment, d.journal_entry) for d in result.differences}
    assert found == {
        (
            DifferenceKind.DUPLICATE,
            Side.LEDGER,
            f"{TENANT}/payments/p1",
            f"{TENANT}/entries/cap-1-1",
        ),
        (
            DifferenceKind.AMOUNT_MISMATCH,
            Side.LEDGER,
            f"{TENANT}/payments/p2",
            f"{TENANT}/entries/cap-2-0",
        ),
        (DifferenceKind.MISSING_IN_LEDGER, Side.LEDGER, f"{TENANT}/payments/p3", ""),
        (DifferenceKind.MISSING_IN_PAYMENTS, Side.LEDGER, "", f"{TENANT}/entries/orphan"),
    }
    # Capture 1 is settled and booked (its duplicate entry is a finding of its own).
    assert {m.operation.operation_id for m in result.matched} == {
        "cap-1",
        "cap-4",
        ops[3].operation_id,
    }


def test_a_currency_mismatch_is_its_own_kind_not_an_amount_mismatch():
    op = capture(1, 1_000, "EUR")
    settled = line(1, capture(1, 1_000, "USD"))
    result = reconcile(
        psp="sandbox", records=[settled], operations=[op], ledger_entries=[entry(op)]
    )
    [difference] = result.differences
    assert difference.kind is DifferenceKind.CURRENCY_MISMATCH
    assert (difference.expected, difference.actual) == (Amount(1_000, "EUR"), Amount(1_000, "USD"))
    eur, usd = result.totals
    assert (eur.currency, eur.payments_minor, eur.settlement_minor) == ("EUR", 1_000, 0)
    assert (usd.currency, usd.payments_minor, usd.settlement_minor) == ("USD", 0, 1_000)


def test_partial_captures_of_one_payment_pair_by_amount_whatever_their_order():
    first = capture(1, 4_000)
    second = PaymentOperation(
        operation_id="cap-1b",
        kind=OperationKind.CAPTURE,
        payment=first.payment,
        payment_reference=first.payment_reference,
        amount_minor=6_000,
        currency="USD",
        occurred_at=T0,  # recorded earlier than the 4_000 one, settled later
    )
    records = [line(1, first), line(2, second)]
    result = reconcile(
        psp="sandbox",
        records=records,
        operations=[first, second],
        ledger_entries=[entry(first), entry(second)],
    )
    assert result.differences == ()
    assert {(m.operation.amount_minor, m.record.gross_minor) for m in result.matched} == {
        (4_000, 4_000),
        (6_000, 6_000),
    }


def test_payments_recording_one_operation_twice_is_a_payments_duplicate():
    ops, records, entries = book()
    result = reconcile(
        psp="sandbox", records=records, operations=[*ops, ops[2]], ledger_entries=entries
    )
    [difference] = result.differences
    assert (difference.kind, difference.source) == (DifferenceKind.DUPLICATE, Side.PAYMENTS)
    assert difference.occurrences == 2
    assert difference.operations == (ops[2],)


def test_two_refunds_claiming_one_psp_refund_are_a_payments_duplicate():
    ops, records, entries = book()
    twin = PaymentOperation(
        operation_id=f"{TENANT}/payments/p1/refunds/r1-again",
        kind=OperationKind.REFUND,
        payment=ops[3].payment,
        refund=f"{TENANT}/payments/p1/refunds/r1-again",
        payment_reference=ops[3].payment_reference,
        psp_reference=ops[3].psp_reference,
        amount_minor=2_500,
        currency="USD",
        occurred_at=ops[3].occurred_at,
    )
    result = reconcile(
        psp="sandbox",
        records=records,
        operations=[*ops, twin],
        ledger_entries=[*entries, entry(twin)],
    )
    kinds = {(d.kind, d.source, d.refund) for d in result.differences}
    assert kinds == {(DifferenceKind.DUPLICATE, Side.PAYMENTS, twin.refund)}


def test_fee_lines_need_no_payment_and_count_in_the_fees_total():
    ops, records, entries = book()
    monthly = SettlementRecord(
        record_id="sl_fee_1",
        line_number=99,
        settlement_date=DAY,
        type=RecordType.FEE,
        psp_reference="",
        payment_reference="",
        currency="USD",
        gross_minor=0,
        fee_minor=1_500,
        net_minor=-1_500,
    )
    result = reconcile(
        psp="sandbox", records=[*records, monthly], operations=ops, ledger_entries=entries
    )
    assert result.differences == ()
    assert result.fee_records == (monthly,)
    expected_fees = sum(r.fee_minor for r in records) + 1_500
    assert result.totals[0].settlement_fees_minor == expected_fees


def test_the_result_does_not_depend_on_the_order_of_the_inputs():
    ops, records, entries = book()
    records.append(records[1])
    records[0] = line(1, ops[0], gross=9_999)
    forward = reconcile(psp="sandbox", records=records, operations=ops, ledger_entries=entries)
    backward = reconcile(
        psp="sandbox",
        records=records[::-1],
        operations=ops[::-1],
        ledger_entries=entries[::-1],
    )
    assert forward == backward
