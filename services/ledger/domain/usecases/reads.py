"""Reads: balances now or as of a time, statements, and chain verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.accounts import Account, Balance
from services.ledger.domain.chain import GENESIS_HASH, BreakKind, ChainBreak, ChainVerifier
from services.ledger.domain.entries import JournalEntry
from services.ledger.domain.names import account_name, entry_name
from services.ledger.domain.ports import StatementLine, StatementTotals, UnitOfWork

VERIFY_PAGE = 500


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: Account
    balance: Balance
    last_sequence: int
    read_time: datetime


@dataclass(frozen=True, slots=True)
class Statement:
    account: Account
    start: datetime | None
    end: datetime
    totals: StatementTotals


@dataclass(frozen=True, slots=True)
class StatementPage:
    account: Account
    opening: Balance
    lines: list[StatementLine]


@dataclass(frozen=True, slots=True)
class ChainVerification:
    checked: int
    first_sequence: int
    last_sequence: int
    head_hash: bytes
    first_break: ChainBreak | None
    verify_time: datetime


async def account(uow: UnitOfWork, account_id: str) -> Account:
    found = await uow.accounts.get(account_id)
    if found is None:
        raise errors.account_not_found(account_name(uow.tenant, account_id))
    return found


async def balance(uow: UnitOfWork, account_id: str, as_of: datetime | None) -> AccountBalance:
    found = await account(uow, account_id)
    now = uow.now()
    point = None if as_of is None or as_of >= now else as_of
    snapshot = await uow.reports.balance(account_id, point)
    return AccountBalance(found, snapshot.balance, snapshot.last_sequence, point or now)


async def statement(
    uow: UnitOfWork, account_id: str, start: datetime | None, end: datetime | None
) -> Statement:
    found = await account(uow, account_id)
    until = end or uow.now()
    return Statement(found, start, until, await uow.reports.statement(account_id, start, until))


async def statement_lines(
    uow: UnitOfWork,
    account_id: str,
    *,
    start: datetime | None,
    end: datetime,
    after: tuple[int, int],
    limit: int,
) -> StatementPage:
    found = await account(uow, account_id)
    opening, lines = await uow.reports.lines(account_id, start, end, after, limit)
    return StatementPage(found, opening, lines)


async def verify_chain(uow: UnitOfWork, start: int, end: int) -> ChainVerification:
    """Re-hash [start, end] (1 and the head when 0) from the stored hash before `start`."""
    first = max(start, 1)
    head = await uow.chain.head_sequence()
    last = min(end or head, head)
    previous = GENESIS_HASH if first == 1 else await uow.chain.hash_at(first - 1)
    verifier = ChainVerifier(uow.tenant, first, previous or GENESIS_HASH)
    if previous is None and first <= head:
        verifier.first_break = ChainBreak(first - 1, BreakKind.SEQUENCE_GAP, "", b"", b"")
    cursor = first
    while cursor <= last and verifier.first_break is None:
        links = await uow.chain.links(cursor, last, VERIFY_PAGE)
        if not links:
            break
        verifier.feed(links)
        cursor = links[-1].link.sequence + 1
    if verifier.first_break is None and verifier.next_sequence <= last:
        # Links missing up to the head: entries were deleted.
        verifier.first_break = ChainBreak(
            verifier.next_sequence, BreakKind.SEQUENCE_GAP, "", b"", b""
        )
    broken = verifier.first_break
    return ChainVerification(
        checked=verifier.checked,
        first_sequence=first,
        last_sequence=last if broken is None else broken.sequence,
        head_hash=verifier.head_hash,
        first_break=broken,
        verify_time=uow.now(),
    )


async def entry(uow: UnitOfWork, entry_id: str) -> JournalEntry:
    found = await uow.journal.get(entry_id)
    if found is None:
        raise errors.entry_not_found(entry_name(uow.tenant, entry_id))
    return found
