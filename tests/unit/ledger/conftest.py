"""In-memory fakes of the ledger's ports (subclasses of the real ones), served as fixtures."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from services.ledger.domain import chain
from services.ledger.domain.accounts import Account, AccountState, Balance
from services.ledger.domain.entries import ChainLink, EntryDraft, JournalEntry
from services.ledger.domain.events import LedgerEvent
from services.ledger.domain.holds import Hold, HoldState
from services.ledger.domain.ports import (
    AccountRepository,
    AddOutcome,
    BalanceSnapshot,
    Chain,
    EntryFilter,
    HoldRepository,
    IdempotencyKey,
    IdempotencyKeys,
    JournalRepository,
    Outbox,
    Reports,
    StatementLine,
    StatementTotals,
    StoredKey,
    TransactionRunner,
    UnitOfWork,
)

T = TypeVar("T")


@dataclass
class Book:
    """Everything one tenant has; copied per transaction, kept on commit."""

    accounts: dict[str, Account] = field(default_factory=dict)
    entries: dict[str, tuple[EntryDraft, ChainLink]] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)
    holds: dict[str, Hold] = field(default_factory=dict)
    keys: dict[str, StoredKey] = field(default_factory=dict)
    events: list[LedgerEvent] = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class FakeAccounts(AccountRepository):
    def __init__(self, book: Book) -> None:
        self._book = book

    async def add(self, account: Account) -> AddOutcome:
        if account.account_id in self._book.accounts:
            return AddOutcome.ID_TAKEN
        if any(a.spec.code == account.spec.code for a in self._book.accounts.values()):
            return AddOutcome.CODE_TAKEN
        self._book.accounts[account.account_id] = copy.deepcopy(account)
        return AddOutcome.ADDED

    async def get(self, account_id: str) -> Account | None:
        found = self._book.accounts.get(account_id)
        return copy.deepcopy(found)

    async def lock(self, account_ids: Iterable[str]) -> dict[str, Account]:
        return {
            i: copy.deepcopy(self._book.accounts[i])
            for i in sorted(set(account_ids))
            if i in self._book.accounts
        }

    async def save(self, accounts: Iterable[Account]) -> None:
        for account in accounts:
            stored = copy.deepcopy(account)
            if stored.balance != Balance() and not stored.balance.fits():
                raise AssertionError("the database would refuse counters past int64")
            self._book.accounts[account.account_id] = stored

    async def page(self, after_code: str, limit: int, state: AccountState | None) -> list[Account]:
        ordered = sorted(self._book.accounts.values(), key=lambda a: a.spec.code)
        return [
            copy.deepcopy(a)
            for a in ordered
            if a.spec.code > after_code and (state is None or a.state is state)
        ][:limit]


class FakeJournal(JournalRepository):
    def __init__(self, book: Book, tenant: str, accounts: FakeAccounts) -> None:
        self._book = book
        self._tenant = tenant
        self._accounts = accounts

    async def record(self, drafts: Sequence[EntryDraft], accounts: Iterable[Account]) -> str | None:
        for draft in drafts:
            if draft.entry_id in self._book.entries:
                return draft.entry_id
        pending = {d.entry_id: d for d in drafts}
        self._book.entries.update({i: (d, _UNCHAINED) for i, d in pending.items()})
        await self._accounts.save(accounts)
        return None

    async def lock(self, entry_id: str) -> bool:
        return entry_id in self._book.entries

    async def get(self, entry_id: str) -> JournalEntry | None:
        found = await self.get_many([entry_id])
        return found[0] if found else None

    async def get_many(self, entry_ids: Sequence[str]) -> list[JournalEntry]:
        return [self._entry(i) for i in entry_ids if i in self._book.entries]

    async def page(self, after_sequence: int, limit: int, where: EntryFilter) -> list[JournalEntry]:
        found = [self._entry(i) for i in self._book.chain]
        return [e for e in found if e.link.sequence > after_sequence][:limit]

    def _entry(self, entry_id: str) -> JournalEntry:
        draft, link = self._book.entries[entry_id]
        reversed_by = next(
            (i for i, (d, _) in self._book.entries.items() if d.reverses == entry_id), None
        )
        return JournalEntry(self._tenant, draft, link, reversed_by)


_UNCHAINED = ChainLink(0, b"", b"", datetime.min.replace(tzinfo=UTC))


class FakeChain(Chain):
    def __init__(self, book: Book, clock: Clock) -> None:
        self._book = book
        self._clock = clock

    async def append(
        self, drafts: Sequence[EntryDraft], contents: Sequence[bytes]
    ) -> list[ChainLink]:
        links = []
        now = self._clock.tick()
        previous = self._head_hash()
        for draft, body in zip(drafts, contents, strict=True):
            sequence = len(self._book.chain) + 1
            digest = chain.link_hash(previous, sequence, now, body)
            link = ChainLink(sequence, previous, digest, now)
            self._book.entries[draft.entry_id] = (draft, link)
            self._book.chain.append(draft.entry_id)
            previous = digest
            links.append(link)
        return links

    def _head_hash(self) -> bytes:
        if not self._book.chain:
            return chain.GENESIS_HASH
        return self._book.entries[self._book.chain[-1]][1].hash

    async def hash_at(self, sequence: int) -> bytes | None:
        if 1 <= sequence <= len(self._book.chain):
            return self._book.entries[self._book.chain[sequence - 1]][1].hash
        return None

    async def head_sequence(self) -> int:
        return len(self._book.chain)

    async def links(self, first: int, last: int, limit: int) -> list[chain.StoredLink]:
        ids = self._book.chain[first - 1 : last][:limit]
        return [chain.StoredLink(self._book.entries[i][1], self._book.entries[i][0]) for i in ids]


class FakeHolds(HoldRepository):
    def __init__(self, book: Book) -> None:
        self._book = book

    async def add(self, hold: Hold) -> bool:
        if hold.hold_id in self._book.holds:
            return False
        self._book.holds[hold.hold_id] = copy.deepcopy(hold)
        return True

    async def get(self, hold_id: str, *, lock: bool = False) -> Hold | None:
        return copy.deepcopy(self._book.holds.get(hold_id))

    async def save(self, hold: Hold) -> None:
        if self._book.holds[hold.hold_id].state is not HoldState.PENDING:
            raise AssertionError("the database refuses changing a finalized hold")
        self._book.holds[hold.hold_id] = copy.deepcopy(hold)

    async def due(self, now: datetime, limit: int) -> list[Hold]:
        due = [
            h
            for h in self._book.holds.values()
            if h.state is HoldState.PENDING and h.expire_time <= now
        ]
        return copy.deepcopy(due[:limit])

    async def page(
        self,
        before: tuple[datetime, str] | None,
        limit: int,
        account_id: str | None,
        state: HoldState | None,
    ) -> list[Hold]:
        ordered = sorted(
            self._book.holds.values(), key=lambda h: (h.create_time, h.hold_id), reverse=True
        )
        return copy.deepcopy([h for h in ordered if state is None or h.state is state][:limit])


class FakeKeys(IdempotencyKeys):
    def __init__(self, book: Book) -> None:
        self._book = book

    async def claim(
        self, keys: Sequence[IdempotencyKey], results: Sequence[Mapping[str, Any]]
    ) -> list[StoredKey | None]:
        out: list[StoredKey | None] = []
        for key, result in zip(keys, results, strict=True):
            found = self._book.keys.get(key.request_id)
            if found is None:
                self._book.keys[key.request_id] = StoredKey(
                    key.method, key.fingerprint, dict(result)
                )
            out.append(found)
        return out


class FakeReports(Reports):
    def __init__(self, book: Book) -> None:
        self._book = book

    def _lines(self, account_id: str) -> list[tuple[ChainLink, int, EntryDraft, int]]:
        found = []
        for entry_id in self._book.chain:
            draft, link = self._book.entries[entry_id]
            for index, posting in enumerate(draft.postings):
                if posting.account_id == account_id:
                    found.append((link, index, draft, posting.amount))
        return found

    async def balance(self, account_id: str, as_of: datetime | None) -> BalanceSnapshot:
        balance, last = Balance(), 0
        for link, _, _, amount in self._lines(account_id):
            if as_of is None or link.create_time <= as_of:
                balance, last = balance.post(amount), link.sequence
        if as_of is None:
            balance = self._book.accounts[account_id].balance
        return BalanceSnapshot(balance, last)

    async def statement(
        self, account_id: str, start: datetime | None, end: datetime
    ) -> StatementTotals:
        opening, debited, credited, sequences = Balance(), 0, 0, []
        for link, _, _, amount in self._lines(account_id):
            if link.create_time >= end:
                continue
            if start is not None and link.create_time < start:
                opening = opening.post(amount)
            else:
                debited += max(amount, 0)
                credited += max(-amount, 0)
                sequences.append(link.sequence)
        return StatementTotals(
            opening,
            debited,
            credited,
            len(sequences),
            min(sequences, default=0),
            max(sequences, default=0),
        )

    async def lines(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime,
        after: tuple[int, int],
        limit: int,
    ) -> tuple[Balance, list[StatementLine]]:
        opening, out = Balance(), list[StatementLine]()
        for link, index, draft, amount in self._lines(account_id):
            if link.create_time >= end:
                continue
            if (start is not None and link.create_time < start) or (link.sequence, index) <= after:
                opening = opening.post(amount)
            elif len(out) < limit:
                out.append(
                    StatementLine(
                        draft.entry_id,
                        link.sequence,
                        index,
                        link.create_time,
                        draft.effective_time,
                        draft.description,
                        "",
                        "USD",
                        amount,
                        draft.reverses,
                    )
                )
        return opening, out


class FakeOutbox(Outbox):
    def __init__(self, book: Book) -> None:
        self._book = book

    async def stage(self, events: Sequence[LedgerEvent]) -> None:
        self._book.events.extend(events)


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, tenant: str, book: Book, clock: Clock) -> None:
        self.tenant = tenant
        self._clock = clock
        self.accounts = FakeAccounts(book)
        self.journal = FakeJournal(book, tenant, self.accounts)
        self.chain = FakeChain(book, clock)
        self.holds = FakeHolds(book)
        self.idempotency = FakeKeys(book)
        self.reports = FakeReports(book)
        self.outbox = FakeOutbox(book)

    def now(self) -> datetime:
        return self._clock.tick()

    async def register_tenant(self) -> None:
        return None


class FakeRunner(TransactionRunner):
    """All or nothing: each run works on a copy of the tenant's book, kept only on success."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.clock = Clock()

    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        book = copy.deepcopy(self.books.get(tenant, Book()))
        result = await work(FakeUnitOfWork(tenant, book, self.clock))
        self.books[tenant] = book
        return result

    async def tenants(self) -> list[str]:
        return sorted(self.books)


@pytest.fixture
def fake_runner_factory() -> type[FakeRunner]:
    """Makes fresh in-memory ledgers (the stateful test needs one per example)."""
    return FakeRunner
