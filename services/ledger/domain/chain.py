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
from json.encoder import encode_basestring as _quote

from services.ledger.domain.entries import ChainLink, EntryDraft
from services.ledger.domain.names import account_name, entry_name, hold_name

GENESIS_HASH = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact)."""
    return (moment - _EPOCH) // _MICROSECOND


def content(tenant: str, draft: EntryDraft) -> bytes:
    """The canonical encoding of what an entry says, independent of any serialization.

    The bytes are exactly `canonical_json(tenant, draft)`'s (a property test pins them); they
    are assembled directly — the keys are fixed and sorted here, each string is quoted by the
    json module's own C quoting function — at a third of the cost. A value of an unexpected
    type (an int subclass, a non-string metadata value or field) takes the json module's path.
    """
    metadata = draft.metadata
    postings = draft.postings
    if any(type(p.amount) is not int for p in postings) or any(
        type(k) is not str or type(v) is not str for k, v in metadata.items()
    ):
        return canonical_json(tenant, draft)
    try:
        return _assembled(tenant, draft)
    except TypeError:  # a non-string where a string belongs: json.dumps decides
        return canonical_json(tenant, draft)


def _assembled(tenant: str, draft: EntryDraft) -> bytes:
    metadata = draft.metadata
    postings = draft.postings
    q = _quote
    accounts = f"tenants/{tenant}/accounts/"
    effective = draft.effective_time
    pairs = ",".join([f"{q(k)}:{q(metadata[k])}" for k in sorted(metadata)])
    lines = ",".join(
        [
            f'{{"account":{q(accounts + p.account_id)},"amount_minor":{p.amount},'
            f'"currency_code":{q(p.currency)},"memo":{q(p.memo)}}}'
            for p in postings
        ]
    )
    hold = "" if draft.hold is None else hold_name(tenant, draft.hold)
    reverses = "" if draft.reverses is None else entry_name(tenant, draft.reverses)
    return (
        f'{{"description":{q(draft.description)},'
        f'"effective_time_us":{"null" if effective is None else micros(effective)},'
        f'"hold":{q(hold)},"metadata":{{{pairs}}},'
        f'"name":{q(entry_name(tenant, draft.entry_id))},"postings":[{lines}],'
        f'"reverses":{q(reverses)},'
        f'"span_id":{q(draft.trace.span_id)},"trace_id":{q(draft.trace.trace_id)}}}'
    ).encode()


def canonical_json(tenant: str, draft: EntryDraft) -> bytes:
    """The definition of `content`: the UTF-8 JSON of the entry's recorded fields, sorted keys,
    no whitespace (ADR 0007)."""
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
