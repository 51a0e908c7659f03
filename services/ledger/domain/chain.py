"""The per-tenant hash chain: canonical entry encoding, link hashes, and verification.

hash = sha256(previous_hash || canonical(entry)), where canonical(entry) =
int64be(sequence) || int64be(create_time in µs since the epoch) || content, and content is
the UTF-8 JSON of the entry's recorded fields with sorted keys and no whitespace (ADR 0007).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.ledger.domain.entries import ChainLink, EntryDraft
from services.ledger.domain.names import account_name, entry_name, hold_name

GENESIS_HASH = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact)."""
    return (moment - _EPOCH) // _MICROSECOND


def content(tenant: str, draft: EntryDraft) -> bytes:
    """The canonical encoding of what an entry says, independent of any serialization."""
    document = {
        "name": entry_name(tenant, draft.entry_id),
        "description": draft.description,
        "metadata": dict(sorted(draft.metadata.items())),
        "effective_time_us": None if draft.effective_time is None else micros(draft.effective_time),
        "reverses": "" if draft.reverses is None else entry_name(tenant, draft.reverses),
        "hold": "" if draft.hold is None else hold_name(tenant, draft.hold),
        "trace_id": draft.trace.trace_id,
        "span_id": draft.trace.span_id,
        "postings": [
            {
                "account": account_name(tenant, p.account_id),
                "currency_code": p.currency,
                "amount_minor": p.amount,
                "memo": p.memo,
            }
            for p in draft.postings
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(previous_hash: bytes, sequence: int, create_time: datetime, body: bytes) -> bytes:
    """sha256(previous_hash || int64be(sequence) || int64be(create_time µs) || content)."""
    digest = hashlib.sha256(previous_hash)
    digest.update(sequence.to_bytes(8, "big", signed=True))
    digest.update(micros(create_time).to_bytes(8, "big", signed=True))
    digest.update(body)
    return digest.digest()


class BreakKind(enum.StrEnum):
    HASH_MISMATCH = "hash_mismatch"
    PREVIOUS_HASH_MISMATCH = "previous_hash_mismatch"
    SEQUENCE_GAP = "sequence_gap"


@dataclass(frozen=True, slots=True)
class ChainBreak:
    sequence: int
    kind: BreakKind
    entry_id: str  # empty for a gap
    expected_hash: bytes
    actual_hash: bytes


@dataclass(frozen=True, slots=True)
class StoredLink:
    """A link as read back from storage, with the entry it chains."""

    link: ChainLink
    draft: EntryDraft


@dataclass(slots=True)
class ChainVerifier:
    """Re-hashes stored links in ascending sequence; stops at the first break."""

    tenant: str
    next_sequence: int
    previous_hash: bytes
    checked: int = 0
    first_break: ChainBreak | None = None
    head_hash: bytes = b""

    def feed(self, links: Iterable[StoredLink]) -> bool:
        """Verify the next links; False once a break was found."""
        for stored in links:
            if self.first_break is not None:
                return False
            self._check(stored)
        return self.first_break is None

    def _check(self, stored: StoredLink) -> None:
        link = stored.link
        if link.sequence != self.next_sequence:
            self.checked += 1
            self.first_break = ChainBreak(self.next_sequence, BreakKind.SEQUENCE_GAP, "", b"", b"")
            return
        self.checked += 1
        if link.previous_hash != self.previous_hash:
            self.first_break = ChainBreak(
                link.sequence,
                BreakKind.PREVIOUS_HASH_MISMATCH,
                stored.draft.entry_id,
                self.previous_hash,
                link.previous_hash,
            )
            return
        expected = link_hash(
            link.previous_hash, link.sequence, link.create_time, content(self.tenant, stored.draft)
        )
        if expected != link.hash:
            self.first_break = ChainBreak(
                link.sequence, BreakKind.HASH_MISMATCH, stored.draft.entry_id, expected, link.hash
            )
            return
        self.previous_hash = link.hash
        self.head_hash = link.hash
        self.next_sequence += 1
