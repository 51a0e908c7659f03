"""Properties of reconciliation over generated books with planted differences.

A true book (operations, their settlement lines, their ledger entries) is generated, then
perturbed: lines dropped, repeated, off by some minor units or in another currency; entries
dropped, repeated or off; lines nobody recorded added. Reconciliation must find exactly the
planted differences, partition every side, tie its totals to the minor unit, and plan
settlement entries that are balanced and stable across reruns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.payments.domain.reconciliation import (
    Difference,
    DifferenceKind,
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Reconciliation,
    RecordType,
    SettlementRecord,
    Side,
    reconcile,
)
from services.payments.domain.reconciliation_postings import (
    SettlementAccounts,
    plan_settlement_entries,
)

CURRENCIES = ("USD", "JPY", "KWD", "EUR")
T0 = datetime(2026, 11, 20, tzinfo=UTC)
ACCOUNTS = {
    c: SettlementAccounts(
        psp_clearing=f"tenants/acme/accounts/clearing-{c.lower()}",
        bank=f"tenants/acme/accounts/bank-{c.lower()}",
        psp_fees=f"tenants/acme/accounts/fees-{c.lower()}",
    )
    for c in CURRENCIES
}


@dataclass(frozen=True)
class Plant:
    """What to do to one operation's settlement line and ledger entry."""

    drop_line: bool
    repeat_line: bool
    line_delta: int
    other_currency: bool
    drop_entry: bool
    repeat_entry: bool
    entry_delta: int


@dataclass
class Book:
    operations: list[PaymentOperation]
    records: list[SettlementRecord]
    entries: list[LedgerEntry]
    expected: set[tuple[DifferenceKind, Side, str]]
    matched: set[str]
    loose: bool = False


_CLEAN = Plant(
    drop_line=False,
    repeat_line=False,
    line_delta=0,
    other_currency=False,
    drop_entry=False,
    repeat_entry=False,
    entry_delta=0,
)
plants = st.builds(
    Plant,
    drop_line=st.booleans(),
    repeat_line=st.booleans(),
    line_delta=st.sampled_from([0, 0, 0, 1, 37, 10_000]),
    other_currency=st.sampled_from([False, False, False, True]),
    drop_entry=st.sampled_from([False, False, True]),
    repeat_entry=st.sampled_from([False, False, True]),
    entry_delta=st.sampled_from([0, 0, 0, 1]),
)


def _operation(n: int, kind: OperationKind, amount: int, currency: str) -> PaymentOperation:
    payment = f"tenants/acme/payments/p{n}"
    is_refund = kind is OperationKind.REFUND
    return PaymentOperation(
        operation_id=f"{payment}/refunds/r{n}" if is_refund else f"capture-{n}",
        kind=kind,
        payment=payment,
        refund=f"{payment}/refunds/r{n}" if is_refund else "",
        payment_reference=f"sbx_auth_{n}",
        psp_reference=f"sbx_re_{n}" if is_refund else "",
        amount_minor=amount,
        currency=currency,
        occurred_at=T0 + timedelta(seconds=n),
    )


def _line(n: int, op: PaymentOperation, plant: Plant, line_number: int) -> SettlementRecord:
    magnitude = op.amount_minor + plant.line_delta
    gross = op.kind.sign * magnitude
    fee = 30 + magnitude * 290 // 10_000 if op.kind is OperationKind.CAPTURE else 0
    currency = op.currency
    if plant.other_currency:
        currency = CURRENCIES[(CURRENCIES.index(currency) + 1) % len(CURRENCIES)]
    return SettlementRecord(
        record_id=f"sl_{n:08d}",
        line_number=line_number,
        settlement_date=date(2026, 11, 20),
        type=RecordType(op.kind.value),
        psp_reference=op.psp_reference or f"sbx_cap_{n}",
        payment_reference=op.payment_reference,
        currency=currency,
        gross_minor=gross,
        fee_minor=fee,
        net_minor=gross - fee,
    )


def _entry(op: PaymentOperation, plant: Plant, copy: int, *, loose: bool = False) -> LedgerEntry:
    """The ledger entry of `op`; a `loose` one names only its payment, not the operation."""
    return LedgerEntry(
        entry=f"tenants/acme/entries/{op.operation_id.rsplit('/', 1)[-1]}-{copy}",
        operation_id="" if loose else op.operation_id,
        kind=op.kind,
        payment=op.payment,
        refund=op.refund,
        amount_minor=op.amount_minor + plant.entry_delta,
        currency=op.currency,
    )


def _plant_line(book: Book, n: int, op: PaymentOperation, plant: Plant) -> bool:
    """Add the operation's settlement line(s) as planted; True when they should tie out."""
    if plant.drop_line:
        book.expected.add((DifferenceKind.MISSING_IN_PSP, Side.SETTLEMENT_REPORT, op.operation_id))
        return False
    for _ in range(2 if plant.repeat_line else 1):
        book.records.append(_line(n, op, plant, len(book.records) + 2))
    if plant.repeat_line:
        book.expected.add((DifferenceKind.DUPLICATE, Side.SETTLEMENT_REPORT, f"sl_{n:08d}"))
    if plant.other_currency:
        book.expected.add(
            (DifferenceKind.CURRENCY_MISMATCH, Side.SETTLEMENT_REPORT, op.operation_id)
        )
        return False
    if plant.line_delta:
        book.expected.add((DifferenceKind.AMOUNT_MISMATCH, Side.SETTLEMENT_REPORT, op.operation_id))
        return False
    return True


def _plant_entry(book: Book, op: PaymentOperation, plant: Plant) -> bool:
    """Add the operation's ledger entry(ies) as planted; True when they should tie out."""
    if plant.drop_entry:
        book.expected.add((DifferenceKind.MISSING_IN_LEDGER, Side.LEDGER, op.operation_id))
        return False
    copies = range(2 if plant.repeat_entry else 1)
    book.entries += [_entry(op, plant, c, loose=book.loose) for c in copies]
    if plant.repeat_entry:
        book.expected.add((DifferenceKind.DUPLICATE, Side.LEDGER, op.payment))
    if plant.entry_delta:
        book.expected.add((DifferenceKind.AMOUNT_MISMATCH, Side.LEDGER, op.operation_id))
        return False
    return True


@st.composite
def books(draw: st.DrawFn) -> Book:
    book = Book([], [], [], set(), set(), loose=draw(st.booleans()))
    for n in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from([OperationKind.CAPTURE, OperationKind.REFUND]))
        amount = draw(st.integers(1, 10**12))
        op = _operation(n, kind, amount, draw(st.sampled_from(CURRENCIES)))
        plant = draw(plants)
        book.operations.append(op)
        settled = _plant_line(book, n, op, plant)
        booked = _plant_entry(book, op, plant)
        if settled and booked:
            book.matched.add(op.operation_id)
    for s in range(draw(st.integers(0, 3))):
        n = 1_000 + s
        stranger = _operation(n, OperationKind.CAPTURE, draw(st.integers(1, 10**9)), "USD")
        book.records.append(_line(n, stranger, _CLEAN, len(book.records) + 2))
        book.expected.add(
            (DifferenceKind.MISSING_IN_PAYMENTS, Side.SETTLEMENT_REPORT, f"sl_{n:08d}")
        )
    book.records = draw(st.permutations(book.records))
    book.entries = draw(st.permutations(book.entries))
    book.operations = draw(st.permutations(book.operations))
    return book


def _run(book: Book) -> Reconciliation:
    return reconcile(
        psp="sandbox", records=book.records, operations=book.operations, ledger_entries=book.entries
    )


def _subject(d: Difference) -> str:
    if d.kind is DifferenceKind.DUPLICATE and d.source is Side.SETTLEMENT_REPORT:
        return d.settlement_record_id
    if d.kind is DifferenceKind.MISSING_IN_PAYMENTS:
        return d.settlement_record_id
    if d.kind is DifferenceKind.DUPLICATE and d.source is Side.LEDGER:
        return d.payment
    return d.operations[0].operation_id


@settings(max_examples=80, deadline=None)
@given(books())
def test_reconciliation_finds_exactly_the_planted_differences(book):
    result = _run(book)
    assert {(d.kind, d.source, _subject(d)) for d in result.differences} == book.expected
    assert result.difference_count == len(book.expected)
    assert {m.operation.operation_id for m in result.matched} == book.matched


@settings(max_examples=80, deadline=None)
@given(books())
def test_every_input_lands_in_exactly_one_place_on_each_side(book):
    result = _run(book)
    settlement_side = [d for d in result.differences if d.source is not Side.LEDGER]
    ledger_side = [d for d in result.differences if d.source is Side.LEDGER]

    records = Counter(m.record for m in result.settlement_matches)
    records += Counter(r for d in settlement_side for r in d.records)
    records += Counter(result.fee_records)
    assert records == Counter(book.records)

    operations = Counter(m.operation for m in result.settlement_matches)
    operations += Counter(op for d in settlement_side for op in d.operations)
    assert operations == Counter(book.operations)

    operations = Counter(m.operation for m in result.ledger_matches)
    operations += Counter(op for d in ledger_side for op in d.operations)
    assert operations == Counter(book.operations)

    entries = Counter(m.entry for m in result.ledger_matches)
    entries += Counter(e for d in ledger_side for e in d.entries)
    assert entries == Counter(book.entries)


@settings(max_examples=80, deadline=None)
@given(books())
def test_totals_tie_to_the_minor_unit_once_differences_are_explained(book):
    result = _run(book)
    for total in result.totals:
        c = total.currency
        assert total.payments_minor == sum(
            o.signed.minor for o in book.operations if o.currency == c
        )
        assert total.settlement_minor == sum(r.gross_minor for r in book.records if r.currency == c)
        assert total.settlement_fees_minor == sum(
            r.fee_minor for r in book.records if r.currency == c
        )
        assert total.ledger_minor == sum(e.signed.minor for e in book.entries if e.currency == c)
        unexplained = total.payments_minor - total.settlement_minor
        for d in result.differences:
            if d.source is Side.LEDGER:
                continue
            unexplained -= sum(o.signed.minor for o in d.operations if o.currency == c)
            unexplained += sum(r.gross_minor for r in d.records if r.currency == c)
        assert unexplained == 0
    for match in result.matched:
        assert match.operation.signed == match.record.gross == match.entry.signed


@settings(max_examples=60, deadline=None)
@given(books(), st.randoms(use_true_random=False))
def test_reruns_are_idempotent_and_never_post_twice(book, rng):
    first = _run(book)
    planned = plan_settlement_entries(first, ACCOUNTS)
    ledger = {entry.entry_id: entry for entry in planned}
    assert len(ledger) == len(planned)  # one id per entry, no collision

    shuffled = Book(
        rng.sample(book.operations, len(book.operations)),
        rng.sample(book.records, len(book.records)),
        rng.sample(book.entries, len(book.entries)),
        book.expected,
        book.matched,
    )
    again = _run(shuffled)
    assert again == first
    replanned = plan_settlement_entries(again, ACCOUNTS)
    assert replanned == planned
    newly_posted = [entry for entry in replanned if entry.entry_id not in ledger]
    assert newly_posted == []


@settings(max_examples=60, deadline=None)
@given(books())
def test_settlement_entries_balance_and_clear_each_booked_line_from_psp_clearing(book):
    result = _run(book)
    planned = plan_settlement_entries(result, ACCOUNTS)
    booked = {m.record.record_id: m.record for m in result.matched}
    for entry in planned:
        assert sum(p.amount_minor for p in entry.postings) == 0
        assert all(p.amount_minor != 0 for p in entry.postings)
        assert len({p.currency for p in entry.postings}) == 1
    for record_id, record in booked.items():
        clearing = ACCOUNTS[record.currency].psp_clearing
        moved = sum(
            p.amount_minor
            for e in planned
            if e.metadata["settlement_record"] == record_id
            for p in e.postings
            if p.account == clearing
        )
        assert moved == -record.gross_minor


def test_a_corrected_line_keeps_its_entry_ids_so_it_cannot_be_posted_twice():
    op = _operation(1, OperationKind.CAPTURE, 10_000, "USD")
    line = _line(1, op, _CLEAN, 2)
    entries = [_entry(op, _CLEAN, 0)]
    before = plan_settlement_entries(
        reconcile(psp="sandbox", records=[line], operations=[op], ledger_entries=entries), ACCOUNTS
    )
    relabelled = replace(line, record_id="sl_99999999", line_number=7)
    after = plan_settlement_entries(
        reconcile(psp="sandbox", records=[relabelled], operations=[op], ledger_entries=entries),
        ACCOUNTS,
    )
    assert [e.entry_id for e in after] == [e.entry_id for e in before]
    assert [e.request_id for e in after] == [e.request_id for e in before]
