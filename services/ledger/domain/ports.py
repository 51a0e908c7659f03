"""What the use cases need from storage: repositories and a unit of work (abstract)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from services.ledger.domain.accounts import Account, AccountState, Balance
from services.ledger.domain.chain import StoredLink
from services.ledger.domain.entries import ChainLink, EntryDraft, JournalEntry
from services.ledger.domain.events import LedgerEvent
from services.ledger.domain.holds import Hold, HoldState

T = TypeVar("T")


class AddOutcome(enum.Enum):
    ADDED = "added"
    ID_TAKEN = "id_taken"
    CODE_TAKEN = "code_taken"


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A request id, the RPC it was sent to, and a digest of the request without the id."""

    request_id: str
    method: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class StoredKey:
    method: str
    fingerprint: bytes
    result: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EntryFilter:
    account_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    balance: Balance
    last_sequence: int


@dataclass(frozen=True, slots=True)
class StatementTotals:
    opening: Balance
    debits: int
    credits: int
    line_count: int
    first_sequence: int
    last_sequence: int


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: str
    sequence: int
    posting_index: int
    create_time: datetime
    effective_time: datetime | None
    description: str
    memo: str
    currency: str
    amount: int
    reverses: str | None


class AccountRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, account: Account) -> AddOutcome: ...

    @abc.abstractmethod
    async def get(self, account_id: str) -> Account | None: ...

    @abc.abstractmethod
    async def lock(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """The accounts that exist, locked for update in a stable order."""

    @abc.abstractmethod
    async def save(self, accounts: Iterable[Account]) -> None:
        """Persist counters, state and version of locked accounts."""

    @abc.abstractmethod
    async def page(
        self, after_code: str, limit: int, state: AccountState | None
    ) -> list[Account]: ...


class JournalRepository(abc.ABC):
    @abc.abstractmethod
    async def record(self, drafts: Sequence[EntryDraft], accounts: Iterable[Account]) -> str | None:
        """Insert the entries and their postings and save the accounts' counters, atomically.
        Returns the first entry id that is taken already (nothing is then usable), or None."""

    @abc.abstractmethod
    async def lock(self, entry_id: str) -> bool:
        """Lock an entry against concurrent reversal; False when it does not exist."""

    @abc.abstractmethod
    async def get(self, entry_id: str) -> JournalEntry | None: ...

    @abc.abstractmethod
    async def get_many(self, entry_ids: Sequence[str]) -> list[JournalEntry]: ...

    @abc.abstractmethod
    async def page(self, after_sequence: int, limit: int, where: EntryFilter) -> list[JournalEntry]:
        """Chained entries in ascending sequence."""


class Chain(abc.ABC):
    @abc.abstractmethod
    async def append(
        self, drafts: Sequence[EntryDraft], contents: Sequence[bytes]
    ) -> list[ChainLink]:
        """Extend the tenant's chain by the entries, in order (the last write before commit)."""

    @abc.abstractmethod
    async def hash_at(self, sequence: int) -> bytes | None: ...

    @abc.abstractmethod
    async def head_sequence(self) -> int: ...

    @abc.abstractmethod
    async def links(self, first: int, last: int, limit: int) -> list[StoredLink]: ...


class HoldRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, hold: Hold) -> bool:
        """False when the hold id is taken."""

    @abc.abstractmethod
    async def get(self, hold_id: str, *, lock: bool = False) -> Hold | None: ...

    @abc.abstractmethod
    async def save(self, hold: Hold) -> None: ...

    @abc.abstractmethod
    async def due(self, now: datetime, limit: int) -> list[Hold]:
        """Pending holds past their expiry, locked, skipping those another sweeper holds."""

    @abc.abstractmethod
    async def page(
        self,
        before: tuple[datetime, str] | None,
        limit: int,
        account_id: str | None,
        state: HoldState | None,
    ) -> list[Hold]:
        """Newest first."""


class IdempotencyKeys(abc.ABC):
    @abc.abstractmethod
    async def claim(
        self, keys: Sequence[IdempotencyKey], results: Sequence[Mapping[str, Any]]
    ) -> list[StoredKey | None]:
        """Record each key with the result it will produce, or return what is stored for it
        (waiting for a concurrent claimer of the same key to finish). One round trip."""


class Reports(abc.ABC):
    @abc.abstractmethod
    async def balance(self, account_id: str, as_of: datetime | None) -> BalanceSnapshot: ...

    @abc.abstractmethod
    async def statement(
        self, account_id: str, start: datetime | None, end: datetime
    ) -> StatementTotals: ...

    @abc.abstractmethod
    async def lines(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime,
        after: tuple[int, int],
        limit: int,
    ) -> tuple[Balance, list[StatementLine]]:
        """Posted counters before the first returned line, and the lines after `after`."""


class Outbox(abc.ABC):
    @abc.abstractmethod
    async def stage(self, events: Sequence[LedgerEvent]) -> None:
        """Write events in the unit of work's transaction."""


class UnitOfWork(abc.ABC):
    """One transaction of one tenant."""

    tenant: str
    accounts: AccountRepository
    journal: JournalRepository
    chain: Chain
    holds: HoldRepository
    idempotency: IdempotencyKeys
    reports: Reports
    outbox: Outbox

    @abc.abstractmethod
    def now(self) -> datetime: ...

    @abc.abstractmethod
    async def register_tenant(self) -> None: ...


class TransactionRunner(abc.ABC):
    """Runs a use case in a fresh tenant transaction, retrying transient conflicts."""

    @abc.abstractmethod
    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T: ...

    @abc.abstractmethod
    async def tenants(self) -> list[str]:
        """Every tenant the ledger knows (for system work such as the expiry sweep)."""
