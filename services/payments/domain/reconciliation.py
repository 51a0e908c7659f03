"""Reconciliation to the cent: a PSP settlement report against payments' operations and the ledger.

Pure data in, pure data out. Every input lands in exactly one place of the result (matched, a
difference, or a fee line), so the result accounts for every minor unit on every side; the
journal entries to post for settled lines are data too, with ids derived from the settlement
line so that a rerun can never post twice. See docs/adr/0013-reconciliation.md.

Signs: amounts are signed by their effect on the merchant's balance at the PSP — a capture is
positive, a refund or chargeback negative — on every side, as in the settlement report.
"""

from __future__ import annotations

import enum
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TypedDict, TypeVar

_CURRENCY = re.compile(r"^[A-Z]{3}$")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class RecordType(enum.StrEnum):
    """Kinds of settlement report lines, as spelled in the report."""

    CAPTURE = "capture"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    FEE = "fee"
    """A PSP charge not tied to one payment operation (monthly fee, payout fee)."""


class OperationKind(enum.StrEnum):
    """Payment operations that move money and so must appear in a settlement."""

    CAPTURE = "capture"
    REFUND = "refund"
    CHARGEBACK = "chargeback"

    @property
    def sign(self) -> int:
        return 1 if self is OperationKind.CAPTURE else -1

    @property
    def record_type(self) -> RecordType:
        return RecordType(self.value)


class DifferenceKind(enum.StrEnum):
    MISSING_IN_PSP = "MISSING_IN_PSP"
    MISSING_IN_PAYMENTS = "MISSING_IN_PAYMENTS"
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    DUPLICATE = "DUPLICATE"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


class Side(enum.StrEnum):
    """Where the `actual` of a difference comes from."""

    SETTLEMENT_REPORT = "SETTLEMENT_REPORT"
    LEDGER = "LEDGER"
    PAYMENTS = "PAYMENTS"


class ReportState(enum.StrEnum):
    """Where a reconciliation run is; SUCCEEDED and FAILED are final."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ReconciliationInputError(ValueError):
    """An input that breaks the model's rules (a bug in an adapter, never a finding)."""


def _check_currency(currency: str) -> None:
    if not _CURRENCY.match(currency):
        msg = f"currency {currency!r} is not an ISO 4217 code"
        raise ReconciliationInputError(msg)


def _check_int(name: str, value: int) -> None:
    # bool is an int in Python; True cents is a bug, not an amount.
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{name} must be an integer number of minor units"
        raise ReconciliationInputError(msg)


@dataclass(frozen=True, slots=True)
class Amount:
    """A signed amount in integer minor units of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        _check_int("amount", self.minor)
        _check_currency(self.currency)


@dataclass(frozen=True, slots=True)
class Period:
    """The reconciled period: `start` inclusive, `end` exclusive, both timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            msg = "period bounds must be timezone-aware"
            raise ReconciliationInputError(msg)
        if not self.start < self.end:
            msg = "period start must be before its end"
            raise ReconciliationInputError(msg)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementRecord:
    """One line of a PSP settlement report.

    `psp_reference` is the PSP's id of the settled operation (capture or refund id) and
    `payment_reference` the PSP's id of the payment (authorization / charge) it belongs to.
    `gross_minor` is signed (refunds negative); `net_minor` = gross - fee.
    """

    record_id: str
    line_number: int
    settlement_date: date
    type: RecordType
    psp_reference: str
    payment_reference: str
    currency: str
    gross_minor: int
    fee_minor: int
    net_minor: int

    def __post_init__(self) -> None:
        for name in ("gross_minor", "fee_minor", "net_minor", "line_number"):
            _check_int(name, getattr(self, name))
        _check_currency(self.currency)
        if not self.record_id:
            msg = "a settlement record needs its id"
            raise ReconciliationInputError(msg)
        if self.net_minor != self.gross_minor - self.fee_minor:
            msg = f"record {self.record_id}: net {self.net_minor} is not gross - fee"
            raise ReconciliationInputError(msg)

    @property
    def gross(self) -> Amount:
        return Amount(self.gross_minor, self.currency)

    @property
    def identity(self) -> tuple[str, str]:
        """What makes two lines the same settled operation: its PSP reference, else its id."""
        if self.psp_reference:
            return (self.type.value, self.psp_reference)
        return ("line", self.record_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentOperation:
    """A capture, refund or chargeback as payments recorded it.

    `operation_id` is payments' own unique id of the operation (the ledger entry for it carries
    the same id). `psp_reference` is the PSP's id of this operation when payments knows it
    (refund ids); captures are often known only by their payment's `payment_reference`.
    `amount_minor` is the positive size of the operation; `signed` applies the kind's sign.
    """

    operation_id: str
    kind: OperationKind
    payment: str
    payment_reference: str
    amount_minor: int
    currency: str
    refund: str = ""
    psp_reference: str = ""
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_int("amount_minor", self.amount_minor)
        _check_currency(self.currency)
        if self.amount_minor <= 0:
            msg = f"operation {self.operation_id}: amount must be positive"
            raise ReconciliationInputError(msg)
        if not self.operation_id:
            msg = "a payment operation needs its id"
            raise ReconciliationInputError(msg)

    @property
    def signed(self) -> Amount:
        return Amount(self.kind.sign * self.amount_minor, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """A ledger journal entry that records one payment operation.

    `operation_id` is the payments operation it records (entry metadata `payment_operation`);
    empty when the entry does not say, which makes it unmatched by construction.
    """

    entry: str
    operation_id: str
    kind: OperationKind
    payment: str
    amount_minor: int
    currency: str
    refund: str = ""

    def __post_init__(self) -> None:
        _check_int("amount_minor", self.amount_minor)
        _check_currency(self.currency)
        if self.amount_minor <= 0:
            msg = f"entry {self.entry}: amount must be positive"
            raise ReconciliationInputError(msg)

    @property
    def signed(self) -> Amount:
        return Amount(self.kind.sign * self.amount_minor, self.currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """One thing that does not tie out, with the inputs it accounts for on each side.

    `expected` is what payments recorded, `actual` what `source` shows. `operations`,
    `records` and `entries` are exactly the inputs this difference stands for (for a
    DUPLICATE, the extra occurrences only), so the result partitions its inputs.
    """

    kind: DifferenceKind
    source: Side
    description: str
    payment: str = ""
    refund: str = ""
    psp_reference: str = ""
    settlement_record_id: str = ""
    journal_entry: str = ""
    expected: Amount | None = None
    actual: Amount | None = None
    occurrences: int = 0
    operations: tuple[PaymentOperation, ...] = ()
    records: tuple[SettlementRecord, ...] = ()
    entries: tuple[LedgerEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class SettlementMatch:
    """A payment operation and the settlement line that settles it, same amount and currency."""

    operation: PaymentOperation
    record: SettlementRecord


@dataclass(frozen=True, slots=True)
class LedgerMatch:
    """A payment operation and the ledger entry that records it, same amount and currency."""

    operation: PaymentOperation
    entry: LedgerEntry


@dataclass(frozen=True, slots=True)
class MatchedOperation:
    """An operation that ties out on all three sides."""

    operation: PaymentOperation
    record: SettlementRecord
    entry: LedgerEntry


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """Net totals of one currency on each side (signed), and the PSP's fees (positive)."""

    currency: str
    payments_minor: int
    settlement_minor: int
    ledger_minor: int
    settlement_fees_minor: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """The outcome of reconciling one PSP's settlement for one period."""

    psp: str
    settlement_matches: tuple[SettlementMatch, ...]
    ledger_matches: tuple[LedgerMatch, ...]
    matched: tuple[MatchedOperation, ...]
    fee_records: tuple[SettlementRecord, ...]
    differences: tuple[Difference, ...]
    totals: tuple[CurrencyTotal, ...]
    payment_operations_checked: int
    settlement_records_checked: int
    ledger_entries_checked: int

    @property
    def matched_count(self) -> int:
        return len(self.matched)

    @property
    def difference_count(self) -> int:
        return len(self.differences)

    def differences_of(self, kind: DifferenceKind) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.kind is kind)


# -- matching ----------------------------------------------------------------------------------


def _group(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


_OpKey = tuple[str, str, str, str, str, int, str, str, str]


def _op_order(op: PaymentOperation) -> _OpKey:
    """A total order on operations (every field), so no result depends on input order."""
    moment = op.occurred_at.isoformat() if op.occurred_at else ""
    return (
        op.payment_reference,
        moment,
        op.operation_id,
        op.kind.value,
        op.currency,
        op.amount_minor,
        op.psp_reference,
        op.refund,
        op.payment,
    )


def record_order(record: SettlementRecord) -> tuple[date, str, int]:
    return (record.settlement_date, record.record_id, record.line_number)


def _amount_text(amount: Amount) -> str:
    return f"{amount.minor} {amount.currency}"


def _op_label(op: PaymentOperation) -> str:
    return f"{op.kind.value} {op.refund or op.payment}"


class _OpFields(TypedDict):
    payment: str
    refund: str
    psp_reference: str


def _op_fields(op: PaymentOperation, psp_reference: str = "") -> _OpFields:
    return {
        "payment": op.payment,
        "refund": op.refund,
        "psp_reference": psp_reference or op.psp_reference,
    }


@dataclass
class _Findings:
    differences: list[Difference] = field(default_factory=list)
    settlement_matches: list[SettlementMatch] = field(default_factory=list)
    ledger_matches: list[LedgerMatch] = field(default_factory=list)


def _dedupe_records(
    records: Sequence[SettlementRecord], found: _Findings
) -> list[SettlementRecord]:
    """Keep the first line of each settled operation; report the others as DUPLICATE."""
    kept: list[SettlementRecord] = []
    for identity, group in _group(sorted(records, key=record_order), _identity).items():
        first, extras = group[0], tuple(group[1:])
        kept.append(first)
        if extras:
            found.differences.append(
                Difference(
                    kind=DifferenceKind.DUPLICATE,
                    source=Side.SETTLEMENT_REPORT,
                    psp_reference=first.psp_reference,
                    settlement_record_id=first.record_id,
                    actual=first.gross,
                    occurrences=len(group),
                    records=extras,
                    description=(
                        f"{first.type.value} {identity[1]} is settled {len(group)} times "
                        f"(lines {', '.join(str(r.line_number) for r in group)})"
                    ),
                )
            )
    return kept


def _identity(record: SettlementRecord) -> tuple[str, str]:
    return record.identity


def _dedupe_operations(
    operations: Sequence[PaymentOperation], found: _Findings
) -> list[PaymentOperation]:
    kept: list[PaymentOperation] = []
    for operation_id, group in _group(sorted(operations, key=_op_order), _op_id).items():
        first, extras = group[0], tuple(group[1:])
        kept.append(first)
        if extras:
            found.differences.append(
                Difference(
                    kind=DifferenceKind.DUPLICATE,
                    source=Side.PAYMENTS,
                    expected=first.signed,
                    actual=first.signed,
                    occurrences=len(group),
                    operations=extras,
                    description=f"payments records operation {operation_id} {len(group)} times",
                    **_op_fields(first),
                )
            )
    return kept


def _op_id(op: PaymentOperation) -> str:
    return op.operation_id


def _compare(op: PaymentOperation, actual: Amount, where: str) -> tuple[DifferenceKind, str] | None:
    """None when `actual` ties out with the operation, else the kind and an explanation."""
    expected = op.signed
    if actual.currency != expected.currency:
        return (
            DifferenceKind.CURRENCY_MISMATCH,
            (
                f"{_op_label(op)}: payments recorded {_amount_text(expected)}, "
                f"{where} shows {_amount_text(actual)}"
            ),
        )
    if actual.minor != expected.minor:
        return (
            DifferenceKind.AMOUNT_MISMATCH,
            (
                f"{_op_label(op)}: payments recorded {_amount_text(expected)}, {where} shows "
                f"{_amount_text(actual)} (off by {actual.minor - expected.minor})"
            ),
        )
    return None


def _settle_pair(op: PaymentOperation, record: SettlementRecord, found: _Findings) -> None:
    verdict = _compare(op, record.gross, f"line {record.record_id}")
    if verdict is None:
        found.settlement_matches.append(SettlementMatch(op, record))
        return
    kind, description = verdict
    found.differences.append(
        Difference(
            kind=kind,
            source=Side.SETTLEMENT_REPORT,
            settlement_record_id=record.record_id,
            expected=op.signed,
            actual=record.gross,
            operations=(op,),
            records=(record,),
            description=description,
            **_op_fields(op, record.psp_reference),
        )
    )


def _missing_in_psp(op: PaymentOperation, found: _Findings, why: str) -> None:
    found.differences.append(
        Difference(
            kind=DifferenceKind.MISSING_IN_PSP,
            source=Side.SETTLEMENT_REPORT,
            expected=op.signed,
            operations=(op,),
            description=f"{_op_label(op)} of {_amount_text(op.signed)}: {why}",
            **_op_fields(op),
        )
    )


def _pair_group(
    ops: list[PaymentOperation], records: list[SettlementRecord], found: _Findings
) -> tuple[list[PaymentOperation], list[SettlementRecord]]:
    """Pair operations and lines of one payment and kind: equal amounts first, then in order.

    Returns what is left unpaired on each side.
    """
    free = list(records)
    unpaired: list[PaymentOperation] = []
    for op in ops:
        twin = next((r for r in free if r.gross == op.signed), None)
        if twin is None:
            unpaired.append(op)
        else:
            free.remove(twin)
            found.settlement_matches.append(SettlementMatch(op, twin))
    paired = min(len(unpaired), len(free))
    for op, record in zip(unpaired[:paired], free[:paired], strict=True):
        _settle_pair(op, record, found)
    return unpaired[paired:], free[paired:]


def _match_settlement(
    operations: list[PaymentOperation], records: list[SettlementRecord], found: _Findings
) -> None:
    by_reference = {r.identity: r for r in records if r.psp_reference}
    consumed: dict[tuple[str, str], PaymentOperation] = {}
    by_payment: list[PaymentOperation] = []
    for op in operations:
        if not op.psp_reference:
            by_payment.append(op)
            continue
        identity = (op.kind.record_type.value, op.psp_reference)
        if identity in consumed:
            first = consumed[identity]
            found.differences.append(
                Difference(
                    kind=DifferenceKind.DUPLICATE,
                    source=Side.PAYMENTS,
                    expected=op.signed,
                    actual=first.signed,
                    occurrences=2,
                    operations=(op,),
                    description=(
                        f"operations {first.operation_id} and {op.operation_id} both claim "
                        f"PSP {op.kind.value} {op.psp_reference}"
                    ),
                    **_op_fields(op),
                )
            )
            continue
        record = by_reference.get(identity)
        if record is None:
            _missing_in_psp(op, found, f"no settlement line for PSP reference {op.psp_reference}")
            continue
        consumed[identity] = op
        _settle_pair(op, record, found)
    # Lines are unique by identity here (duplicates were set aside), so identity is the key.
    free = [r for r in records if r.identity not in consumed]
    ops_by_group = _group(by_payment, lambda o: (o.kind.record_type, o.payment_reference))
    records_by_group = _group(free, lambda r: (r.type, r.payment_reference))
    left_records: list[SettlementRecord] = []
    for group in sorted(set(ops_by_group) | set(records_by_group)):
        ops_left, recs_left = _pair_group(
            ops_by_group.get(group, []), records_by_group.get(group, []), found
        )
        for op in ops_left:
            _missing_in_psp(op, found, "no settlement line for it in the report")
        left_records += recs_left
    for record in sorted(left_records, key=record_order):
        found.differences.append(
            Difference(
                kind=DifferenceKind.MISSING_IN_PAYMENTS,
                source=Side.SETTLEMENT_REPORT,
                psp_reference=record.psp_reference,
                settlement_record_id=record.record_id,
                actual=record.gross,
                records=(record,),
                description=(
                    f"settlement line {record.record_id} ({record.type.value} "
                    f"{_amount_text(record.gross)} for PSP payment {record.payment_reference}) "
                    "matches no payment operation"
                ),
            )
        )


def _ledger_orphan(entry: LedgerEntry, why: str, found: _Findings) -> None:
    found.differences.append(
        Difference(
            kind=DifferenceKind.MISSING_IN_PAYMENTS,
            source=Side.LEDGER,
            payment=entry.payment,
            refund=entry.refund,
            journal_entry=entry.entry,
            actual=entry.signed,
            entries=(entry,),
            description=(
                f"ledger entry {entry.entry} ({entry.kind.value} {_amount_text(entry.signed)}) "
                f"{why}"
            ),
        )
    )


def _ledger_duplicate(op: PaymentOperation, group: list[LedgerEntry], found: _Findings) -> None:
    """`group[0]` is the entry that counts; the others record the same operation again."""
    found.differences.append(
        Difference(
            kind=DifferenceKind.DUPLICATE,
            source=Side.LEDGER,
            journal_entry=group[1].entry,
            expected=op.signed,
            actual=group[1].signed,
            occurrences=len(group),
            entries=tuple(group[1:]),
            description=(
                f"{_op_label(op)} is recorded by {len(group)} ledger entries: "
                + ", ".join(e.entry for e in group)
            ),
            **_op_fields(op),
        )
    )


def _ledger_pair(op: PaymentOperation, entry: LedgerEntry, found: _Findings) -> None:
    verdict = _compare(op, entry.signed, f"ledger entry {entry.entry}")
    if verdict is None:
        found.ledger_matches.append(LedgerMatch(op, entry))
        return
    kind, description = verdict
    found.differences.append(
        Difference(
            kind=kind,
            source=Side.LEDGER,
            journal_entry=entry.entry,
            expected=op.signed,
            actual=entry.signed,
            operations=(op,),
            entries=(entry,),
            description=description,
            **_op_fields(op),
        )
    )


def _missing_in_ledger(op: PaymentOperation, found: _Findings) -> None:
    found.differences.append(
        Difference(
            kind=DifferenceKind.MISSING_IN_LEDGER,
            source=Side.LEDGER,
            expected=op.signed,
            operations=(op,),
            description=f"{_op_label(op)} of {_amount_text(op.signed)} has no ledger entry",
            **_op_fields(op),
        )
    )


def _match_ledger_by_payment(
    ops: list[PaymentOperation], entries: list[LedgerEntry], found: _Findings
) -> None:
    """Entries that name only their payment: pair with its operations of the same kind, equal
    amounts first, then in order; an extra entry equal to a paired one is its DUPLICATE."""
    free = list(entries)
    paired: list[tuple[PaymentOperation, LedgerEntry]] = []
    unpaired: list[PaymentOperation] = []
    for op in ops:
        twin = next((e for e in free if e.signed == op.signed), None)
        if twin is None:
            unpaired.append(op)
            continue
        free.remove(twin)
        paired.append((op, twin))
        found.ledger_matches.append(LedgerMatch(op, twin))
    for op, entry in zip(unpaired, free, strict=False):
        paired.append((op, entry))
        _ledger_pair(op, entry, found)
    for op in unpaired[len(free) :]:
        _missing_in_ledger(op, found)
    for entry in free[len(unpaired) :]:
        twin_of = next(((op, e) for op, e in paired if e.signed == entry.signed), None)
        if twin_of is None:
            _ledger_orphan(entry, "matches no payment operation", found)
        else:
            _ledger_duplicate(twin_of[0], [twin_of[1], entry], found)


def _name_duplicated_lines(found: _Findings) -> None:
    """Say which operation a duplicated line settles (and its amount), when one matched it."""
    settles: dict[tuple[str, str], PaymentOperation] = {
        m.record.identity: m.operation for m in found.settlement_matches
    }
    for d in found.differences:
        if d.source is Side.SETTLEMENT_REPORT and d.records and d.operations:
            settles.setdefault(d.records[0].identity, d.operations[0])
    for n, d in enumerate(found.differences):
        if d.kind is not DifferenceKind.DUPLICATE or d.source is not Side.SETTLEMENT_REPORT:
            continue
        op = settles.get(d.records[0].identity)
        if op is not None:
            found.differences[n] = replace(
                d, payment=op.payment, refund=op.refund, expected=op.signed
            )


def _match_ledger(
    operations: list[PaymentOperation], entries: Sequence[LedgerEntry], found: _Findings
) -> None:
    """Entries that name their operation (`operation_id`) join on it; entries that name only
    their payment fall back to pairing within the payment; entries naming neither are orphans."""
    ops_by_id = {op.operation_id: op for op in operations}
    ordered = sorted(entries, key=lambda e: e.entry)
    keyed = _group((e for e in ordered if e.operation_id), lambda e: e.operation_id)
    for operation_id, group in keyed.items():
        op = ops_by_id.get(operation_id)
        if op is None:
            for entry in group:
                _ledger_orphan(
                    entry, f"records operation {operation_id}, unknown to payments", found
                )
            continue
        if len(group) > 1:
            _ledger_duplicate(op, group, found)
        _ledger_pair(op, group[0], found)
    waiting = [op for op in operations if op.operation_id not in keyed]
    loose = [e for e in ordered if not e.operation_id]
    for entry in loose:
        if not entry.payment:
            _ledger_orphan(entry, "names no payment operation and no payment", found)
    ops_by_group = _group(waiting, lambda o: (o.payment, o.kind.value))
    entries_by_group = _group((e for e in loose if e.payment), lambda e: (e.payment, e.kind.value))
    for pair_key in sorted(set(ops_by_group) | set(entries_by_group)):
        _match_ledger_by_payment(
            ops_by_group.get(pair_key, []), entries_by_group.get(pair_key, []), found
        )


def _totals(
    operations: Sequence[PaymentOperation],
    records: Sequence[SettlementRecord],
    entries: Sequence[LedgerEntry],
) -> tuple[CurrencyTotal, ...]:
    payments: Counter[str] = Counter()
    settlement: Counter[str] = Counter()
    ledger: Counter[str] = Counter()
    fees: Counter[str] = Counter()
    for op in operations:
        payments[op.currency] += op.signed.minor
    for record in records:
        settlement[record.currency] += record.gross_minor
        fees[record.currency] += record.fee_minor
    for entry in entries:
        ledger[entry.currency] += entry.signed.minor
    currencies = sorted(set(payments) | set(settlement) | set(ledger) | set(fees))
    return tuple(
        CurrencyTotal(c, payments[c], settlement[c], ledger[c], fees[c]) for c in currencies
    )


_KIND_ORDER = {kind: n for n, kind in enumerate(DifferenceKind)}


def _difference_order(d: Difference) -> tuple[int, str, str, str, str, str]:
    operation = d.operations[0].operation_id if d.operations else ""
    return (
        _KIND_ORDER[d.kind],
        d.source.value,
        d.payment,
        operation,
        d.settlement_record_id,
        d.journal_entry,
    )


def _match_order(match: SettlementMatch | LedgerMatch) -> _OpKey:
    return _op_order(match.operation)


def reconcile(
    *,
    psp: str,
    records: Sequence[SettlementRecord],
    operations: Sequence[PaymentOperation],
    ledger_entries: Sequence[LedgerEntry],
) -> Reconciliation:
    """Match one PSP's settlement lines, payments' operations and ledger entries.

    Settlement side: lines are first de-duplicated by settled operation (PSP reference, else
    line id); operations that know their PSP reference match by it; the others (captures known
    only by their payment's PSP reference) pair with lines of the same payment and kind, equal
    amounts first. Ledger side: entries match operations by operation id. The result does not
    depend on the order of the inputs.
    """
    found = _Findings()
    fee_lines = [r for r in records if r.type is RecordType.FEE]
    movement_lines = [r for r in records if r.type is not RecordType.FEE]
    kept_fees = _dedupe_records(fee_lines, found)
    kept_lines = _dedupe_records(movement_lines, found)
    kept_ops = _dedupe_operations(operations, found)
    _match_settlement(kept_ops, kept_lines, found)
    _name_duplicated_lines(found)
    _match_ledger(kept_ops, ledger_entries, found)
    settled = {m.operation.operation_id: m.record for m in found.settlement_matches}
    matched = tuple(
        MatchedOperation(m.operation, settled[m.operation.operation_id], m.entry)
        for m in sorted(found.ledger_matches, key=_match_order)
        if m.operation.operation_id in settled
    )
    return Reconciliation(
        psp=psp,
        settlement_matches=tuple(sorted(found.settlement_matches, key=_match_order)),
        ledger_matches=tuple(sorted(found.ledger_matches, key=_match_order)),
        matched=matched,
        fee_records=tuple(sorted(kept_fees, key=record_order)),
        differences=tuple(sorted(found.differences, key=_difference_order)),
        totals=_totals(operations, records, ledger_entries),
        payment_operations_checked=len(operations),
        settlement_records_checked=len(records),
        ledger_entries_checked=len(ledger_entries),
    )
