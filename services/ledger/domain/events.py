"""What happened in the ledger, as domain events the unit of work stages in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.ledger.domain.accounts import Account
from services.ledger.domain.entries import JournalEntry
from services.ledger.domain.holds import Hold


@dataclass(frozen=True, slots=True)
class AccountOpened:
    account: Account


@dataclass(frozen=True, slots=True)
class AccountClosed:
    account: Account


@dataclass(frozen=True, slots=True)
class EntryPosted:
    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class HoldCreated:
    hold: Hold


@dataclass(frozen=True, slots=True)
class HoldPosted:
    hold: Hold
    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class HoldVoided:
    hold: Hold


@dataclass(frozen=True, slots=True)
class HoldExpired:
    hold: Hold
    event_time: datetime


LedgerEvent = (
    AccountOpened
    | AccountClosed
    | EntryPosted
    | HoldCreated
    | HoldPosted
    | HoldVoided
    | HoldExpired
)
