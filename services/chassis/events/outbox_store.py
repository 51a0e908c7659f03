"""The relay's and operator's SQL on the outbox: claim a batch, mark it, backlog, republish.

Claiming is where ordering and multi-relay safety meet (ADR 0006). Rows are locked with
`FOR UPDATE SKIP LOCKED` in position order, so relays never wait for each other. A relay may
skip a subject's early rows (locked by another relay) and lock later ones; publishing those
would overtake the early ones, so a claim keeps, per subject, only the rows before the first
unpublished row it does not hold. Within a subject, positions follow commit order (staging
locks the subject), so a claim always sees a subject's committed rows as a gap-free prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox import outbox_table

# One statement: lock up to :limit unpublished rows in position order, skipping rows other
# relays hold, and keep of each subject only the rows before its first unpublished row that this
# claim does not hold (up to the claim's last position): a row another relay holds, or one this
# statement's snapshot still shows unpublished. The check reads the same snapshot as the lock,
# so it can only hold back more rows than necessary (they go out next round), never fewer.
_CLAIM = sa.text(
    "WITH claimed AS MATERIALIZED ("
    " SELECT position, event_id, subject, type, source, time, data, traceparent, tracestate,"
    " created_at FROM outbox WHERE published_at IS NULL"
    " ORDER BY position LIMIT :limit FOR UPDATE SKIP LOCKED),"
    " foreign_heads AS ("
    " SELECT o.subject, min(o.position) AS head FROM outbox o"
    " WHERE o.published_at IS NULL"
    " AND o.subject IN (SELECT subject FROM claimed)"
    " AND o.position <= (SELECT max(position) FROM claimed)"
    " AND o.position NOT IN (SELECT position FROM claimed)"
    " GROUP BY o.subject)"
    " SELECT c.* FROM claimed c LEFT JOIN foreign_heads h ON h.subject = c.subject"
    " WHERE h.head IS NULL OR c.position < h.head ORDER BY c.position"
)
_MARK = sa.text(
    "UPDATE outbox SET published_at = clock_timestamp() WHERE position = ANY(:positions)"
)
_BACKLOG = sa.text(
    "SELECT count(*), min(created_at), clock_timestamp() FROM outbox WHERE published_at IS NULL"
)
_BACKLOG_BY_SUBJECT = sa.text(
    "SELECT subject, count(*), min(position), min(created_at) FROM outbox"
    " WHERE published_at IS NULL GROUP BY subject ORDER BY min(position) LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One claimed outbox row, ready to publish."""

    position: int
    envelope: Envelope
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Backlog:
    """Unpublished rows: how many, and how long the oldest has waited (seconds)."""

    count: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class SubjectBacklog:
    """Unpublished rows of one subject."""

    subject: str
    count: int
    first_position: int
    oldest: datetime


async def claim(session: AsyncSession, limit: int) -> list[OutboxRecord]:
    """Lock up to `limit` unpublished rows that are safe to publish now, in position order.

    Locks last until the session's transaction ends; rows dropped for ordering stay locked
    until then too, and are simply left for the next claim.
    """
    return [_record(row) for row in (await session.execute(_CLAIM, {"limit": limit})).all()]


def _record(row: sa.Row[tuple[object, ...]]) -> OutboxRecord:
    mapping = row._mapping  # noqa: SLF001 - SQLAlchemy's public name-based row access
    return OutboxRecord(
        position=int(mapping["position"]),
        created_at=mapping["created_at"],
        envelope=Envelope(
            id=str(mapping["event_id"]),
            type=mapping["type"],
            source=mapping["source"],
            subject=mapping["subject"],
            time=mapping["time"],
            data=bytes(mapping["data"]),
            traceparent=mapping["traceparent"],
            tracestate=mapping["tracestate"],
        ),
    )


async def mark_published(session: AsyncSession, positions: Sequence[int]) -> None:
    """Record that these rows reached Pub/Sub (in the claim's transaction)."""
    if positions:
        await session.execute(_MARK, {"positions": list(positions)})


async def backlog(session: AsyncSession) -> Backlog:
    """How many rows wait, and the age of the oldest."""
    count, oldest, now = (await session.execute(_BACKLOG)).one()
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Backlog(count=int(count), oldest_age_s=age)


async def backlog_by_subject(session: AsyncSession, limit: int = 20) -> list[SubjectBacklog]:
    """The subjects with waiting rows, oldest first (a stuck subject shows up on top)."""
    result = await session.execute(_BACKLOG_BY_SUBJECT, {"limit": limit})
    return [
        SubjectBacklog(subject=subject, count=int(count), first_position=int(first), oldest=oldest)
        for subject, count, first, oldest in result.tuples()
    ]


async def reset_published(
    session: AsyncSession, first: int, last: int, subject: str | None = None
) -> int:
    """Mark rows `first..last` (inclusive) unpublished again, so the relay republishes them.

    Consumers drop the copies they already applied (the inbox keeps each `ce-id`). Returns
    how many rows were reset; rows already pruned cannot come back.
    """
    statement = (
        sa.update(outbox_table)
        .where(outbox_table.c.position.between(first, last))
        .where(outbox_table.c.published_at.is_not(None))
        .values(published_at=None)
    )
    if subject is not None:
        statement = statement.where(outbox_table.c.subject == subject)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
