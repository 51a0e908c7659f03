"""Proto ⇄ domain: the only place that knows both the wire messages and the domain types."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money
from services.ledger.domain.accounts import Account, AccountSpec, AccountState, AccountType, Balance
from services.ledger.domain.chain import BreakKind
from services.ledger.domain.entries import EntryDraft, JournalEntry, Posting, TraceLink
from services.ledger.domain.holds import Hold, HoldState
from services.ledger.domain.names import account_name, entry_name, hold_name, parse
from services.ledger.domain.ports import IdempotencyKey, StatementLine
from services.ledger.domain.usecases.reads import (
    AccountBalance,
    ChainVerification,
    Statement,
)

_TYPES = {
    res.ACCOUNT_TYPE_ASSET: AccountType.ASSET,
    res.ACCOUNT_TYPE_LIABILITY: AccountType.LIABILITY,
    res.ACCOUNT_TYPE_EQUITY: AccountType.EQUITY,
    res.ACCOUNT_TYPE_REVENUE: AccountType.REVENUE,
    res.ACCOUNT_TYPE_EXPENSE: AccountType.EXPENSE,
}
_TYPE_VALUES = {v: k for k, v in _TYPES.items()}
_ACCOUNT_STATES = {
    AccountState.OPEN: res.ACCOUNT_STATE_OPEN,
    AccountState.CLOSED: res.ACCOUNT_STATE_CLOSED,
}
_HOLD_STATES = {
    HoldState.PENDING: res.HOLD_STATE_PENDING,
    HoldState.POSTED: res.HOLD_STATE_POSTED,
    HoldState.VOIDED: res.HOLD_STATE_VOIDED,
    HoldState.EXPIRED: res.HOLD_STATE_EXPIRED,
}
_BREAKS = {
    BreakKind.HASH_MISMATCH: pb.CHAIN_BREAK_KIND_HASH_MISMATCH,
    BreakKind.PREVIOUS_HASH_MISMATCH: pb.CHAIN_BREAK_KIND_PREVIOUS_HASH_MISMATCH,
    BreakKind.SEQUENCE_GAP: pb.CHAIN_BREAK_KIND_SEQUENCE_GAP,
}


# --- proto → domain -------------------------------------------------------------------------


def idempotency_key(method: str, request: Message) -> IdempotencyKey:
    """The request id and a digest of the request without it (deterministic serialization)."""
    copy = type(request)()
    copy.CopyFrom(request)
    request_id = str(getattr(copy, "request_id", ""))
    copy.ClearField("request_id")
    digest = hashlib.sha256(method.encode() + b"\0" + copy.SerializeToString(deterministic=True))
    return IdempotencyKey(request_id, method, digest.digest())


def time_or_none(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def account_spec(account: res.Account) -> AccountSpec:
    return AccountSpec(
        code=account.code,
        display_name=account.display_name,
        currency=account.currency_code,
        type=_TYPES[account.type],
        debits_must_not_exceed_credits=account.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=account.credits_must_not_exceed_debits,
        metadata=dict(account.metadata),
    )


@functools.lru_cache(maxsize=4096)
def _account_id(name: str) -> str:
    """`parse(name, "accounts")`'s id, remembered: a tenant's entries name the same accounts
    again and again (a ValueError is raised every time, never remembered)."""
    return parse(name, "accounts")[1]


def entry_draft(request: pb.CreateJournalEntryRequest, trace: TraceLink) -> EntryDraft:
    entry = request.journal_entry
    return EntryDraft(
        entry_id=request.entry_id,
        postings=tuple(
            Posting(
                account_id=_account_id(p.account),
                currency=p.amount.currency_code,
                amount=p.amount.amount_minor,
                memo=p.memo,
            )
            for p in entry.postings
        ),
        description=entry.description,
        metadata=dict(entry.metadata),
        effective_time=time_or_none(entry, "effective_time"),
        trace=trace,
    )


# --- domain → proto -------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    """`Timestamp.FromDatetime`'s value in integer arithmetic (about a third cheaper; aware
    datetimes and naive ones meaning UTC, as FromDatetime reads them)."""
    delta = moment - (_EPOCH if moment.tzinfo is not None else _EPOCH.replace(tzinfo=None))
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


@functools.lru_cache(maxsize=64)
def shared_timestamp(moment: datetime) -> Timestamp:
    """`timestamp(moment)`, built once per distinct moment (a batch's entries share their
    create time) — only for constructor arguments, which copy it; never to be changed."""
    return timestamp(moment)


def money(currency: str, amount: int) -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def account(value: Account) -> res.Account:
    spec = value.spec
    message = res.Account(
        name=value.name,
        code=spec.code,
        display_name=spec.display_name,
        currency_code=spec.currency,
        type=_TYPE_VALUES[spec.type],
        debits_must_not_exceed_credits=spec.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=spec.credits_must_not_exceed_debits,
        metadata=dict(spec.metadata),
        state=_ACCOUNT_STATES[value.state],
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )
    if value.close_time is not None:
        message.close_time.CopyFrom(timestamp(value.close_time))
    return message


def journal_entry(value: JournalEntry) -> res.JournalEntry:
    """The entry's message, built in place (no intermediate Posting, Money or Timestamp
    messages to copy in): about half the cost of constructor arguments."""
    draft, tenant, link = value.draft, value.tenant, value.link
    created = shared_timestamp(link.create_time)
    message = res.JournalEntry(
        name=entry_name(tenant, draft.entry_id),
        description=draft.description,
        metadata=draft.metadata,
        reverses=entry_name(tenant, draft.reverses) if draft.reverses else "",
        reversed_by=entry_name(tenant, value.reversed_by) if value.reversed_by else "",
        hold=hold_name(tenant, draft.hold) if draft.hold else "",
        sequence=link.sequence,
        previous_hash=link.previous_hash,
        hash=link.hash,
        trace_id=draft.trace.trace_id,
        span_id=draft.trace.span_id,
        create_time=created,
        effective_time=created
        if draft.effective_time is None
        else shared_timestamp(draft.effective_time),
    )
    add = message.postings.add
    accounts = f"tenants/{tenant}/accounts/"
    for p in draft.postings:
        amount = add(account=accounts + p.account_id, memo=p.memo).amount
        amount.currency_code = p.currency
        amount.amount_minor = p.amount
    return message


# Entry messages built for a transaction's events, kept for its response (identity-keyed,
# each pinned with its entry so an id is never reused while it is here; bounded).
_BUILT: dict[int, tuple[JournalEntry, res.JournalEntry]] = {}
_BUILT_LIMIT = 4096


def staged_journal_entry(value: JournalEntry) -> res.JournalEntry:
    """`journal_entry(value)` for an entry event staged in the outbox, kept so that the
    response of the same request takes it (`answered_journal_entry`) instead of building the
    same message again. Not to be changed: the event's constructor copies it."""
    message = journal_entry(value)
    if len(_BUILT) >= _BUILT_LIMIT:  # responses that never came (rolled back): oldest first
        del _BUILT[next(iter(_BUILT))]
    _BUILT[id(value)] = (value, message)
    return message


def answered_journal_entry(value: JournalEntry) -> res.JournalEntry:
    """The message its event was built from (once), or a new one. Not to be changed: the
    response's constructor copies it."""
    kept = _BUILT.pop(id(value), None)
    if kept is not None and kept[0] is value:
        return kept[1]
    return journal_entry(value)


def hold(value: Hold) -> res.Hold:
    tenant = value.tenant
    message = res.Hold(
        name=value.name,
        debit_account=account_name(tenant, value.debit_account_id),
        credit_account=account_name(tenant, value.credit_account_id),
        amount=money(value.currency, value.amount),
        posted_amount=money(value.currency, value.posted_amount),
        state=_HOLD_STATES[value.state],
        description=value.description,
        metadata=dict(value.metadata),
        expire_time=timestamp(value.expire_time),
        journal_entry=entry_name(tenant, value.journal_entry_id) if value.journal_entry_id else "",
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        trace_id=value.trace.trace_id,
        span_id=value.trace.span_id,
    )
    if value.finalize_time is not None:
        message.finalize_time.CopyFrom(timestamp(value.finalize_time))
    return message


def account_balance(value: AccountBalance) -> res.AccountBalance:
    a, b = value.account, value.balance
    normal = a.debit_normal

    def m(amount: int) -> Money:
        return money(a.currency, amount)

    return res.AccountBalance(
        account=a.name,
        read_time=timestamp(value.read_time),
        last_sequence=value.last_sequence,
        posted=m(b.posted(debit_normal=normal)),
        pending=m(b.pending(debit_normal=normal)),
        available=m(b.available(debit_normal=normal)),
        debits_posted=m(b.debits_posted),
        credits_posted=m(b.credits_posted),
        debits_pending=m(b.debits_pending),
        credits_pending=m(b.credits_pending),
    )


def statement(value: Statement) -> res.AccountStatement:
    a, t = value.account, value.totals
    normal = a.debit_normal
    closing = Balance(t.opening.debits_posted + t.debits, t.opening.credits_posted + t.credits)
    message = res.AccountStatement(
        account=a.name,
        end_time=timestamp(value.end),
        opening_balance=money(a.currency, t.opening.posted(debit_normal=normal)),
        closing_balance=money(a.currency, closing.posted(debit_normal=normal)),
        total_debits=money(a.currency, t.debits),
        total_credits=money(a.currency, t.credits),
        line_count=t.line_count,
        first_sequence=t.first_sequence,
        last_sequence=t.last_sequence,
    )
    if value.start is not None:
        message.start_time.CopyFrom(timestamp(value.start))
    return message


def statement_lines(
    account_value: Account, opening: Balance, lines: list[StatementLine]
) -> tuple[Money, list[res.AccountStatementLine]]:
    normal = account_value.debit_normal
    tenant = account_value.tenant
    running = opening
    out = []
    for line in lines:
        running = running.post(line.amount)
        out.append(
            res.AccountStatementLine(
                journal_entry=entry_name(tenant, line.entry_id),
                sequence=line.sequence,
                posting_index=line.posting_index,
                create_time=timestamp(line.create_time),
                effective_time=timestamp(line.effective_time or line.create_time),
                description=line.description,
                memo=line.memo,
                amount=money(line.currency, line.amount),
                running_balance=money(account_value.currency, running.posted(debit_normal=normal)),
                reverses=entry_name(tenant, line.reverses) if line.reverses else "",
            )
        )
    return money(account_value.currency, opening.posted(debit_normal=normal)), out


def verification(tenant: str, value: ChainVerification) -> pb.VerifyChainResponse:
    message = pb.VerifyChainResponse(
        result=pb.CHAIN_VERIFICATION_RESULT_OK
        if value.first_break is None
        else pb.CHAIN_VERIFICATION_RESULT_BROKEN,
        entries_checked=value.checked,
        first_sequence=value.first_sequence,
        last_sequence=value.last_sequence,
        verify_time=timestamp(value.verify_time),
    )
    broken = value.first_break
    if broken is None:
        message.head_hash = value.head_hash
    else:
        message.first_break.CopyFrom(
            pb.ChainBreak(
                journal_entry=entry_name(tenant, broken.entry_id) if broken.entry_id else "",
                sequence=broken.sequence,
                kind=_BREAKS[broken.kind],
                expected_hash=broken.expected_hash,
                actual_hash=broken.actual_hash,
            )
        )
    return message


def hold_state(value: int) -> HoldState | None:
    for state, number in _HOLD_STATES.items():
        if number == value:
            return state
    return None


def account_state(value: int) -> AccountState | None:
    for state, number in _ACCOUNT_STATES.items():
        if number == value:
            return state
    return None
