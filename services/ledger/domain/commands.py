"""What callers ask the ledger to do, already translated out of the wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.chassis.ids import random_id
from services.ledger.domain.accounts import AccountSpec
from services.ledger.domain.entries import EntryDraft, TraceLink
from services.ledger.domain.ports import IdempotencyKey

DEFAULT_HOLD_TTL = timedelta(days=7)


def new_id() -> str:
    """A server-assigned resource id (never one the card-data guard would refuse)."""
    return random_id()


@dataclass(frozen=True, slots=True)
class OpenAccount:
    key: IdempotencyKey
    account_id: str
    spec: AccountSpec


@dataclass(frozen=True, slots=True)
class CloseAccount:
    key: IdempotencyKey
    account_id: str
    etag: str = ""


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """One entry to post; `key` is its own idempotency key inside a batch."""

    draft: EntryDraft
    key: IdempotencyKey | None = None


@dataclass(frozen=True, slots=True)
class PostEntries:
    key: IdempotencyKey
    items: tuple[EntryRequest, ...]
    batch: bool = False


@dataclass(frozen=True, slots=True)
class ReverseEntry:
    key: IdempotencyKey
    entry_id: str
    reversal_id: str
    description: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    trace: TraceLink = field(default_factory=TraceLink)


@dataclass(frozen=True, slots=True)
class CreateHold:
    key: IdempotencyKey
    hold_id: str
    debit_account_id: str
    credit_account_id: str
    currency: str
    amount: int
    expire_time: datetime | None = None
    ttl: timedelta | None = None
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    trace: TraceLink = field(default_factory=TraceLink)


@dataclass(frozen=True, slots=True)
class PostHold:
    key: IdempotencyKey
    hold_id: str
    amount: int | None = None
    currency: str | None = None
    entry_id: str = ""
    description: str = ""
    trace: TraceLink = field(default_factory=TraceLink)


@dataclass(frozen=True, slots=True)
class VoidHold:
    key: IdempotencyKey
    hold_id: str
    reason: str = ""
