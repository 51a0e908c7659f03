"""Pruning: published outbox rows and old inbox rows are deleted after a retention period.

Outbox: only rows with `published_at` set and older than the retention are deleted, so an
unpublished row is never touched (a row the operator queued for republishing is unpublished
again, and the delete re-checks that under the row lock). Inbox: a row may go only when no
copy of its event can reach the consumer any more, or the copy would be applied twice. Copies
come from Pub/Sub redelivery (up to the subscription's message retention, 7 days by default),
from dead-letter replay (up to the dead-letter subscription's retention after that, another
7 days) and from the operator republishing outbox rows (rows the producer still keeps). So the
inbox retention must exceed both retentions together (`MIN_INBOX_RETENTION`, 15 days), and the
producers' outbox retention must stay below it. ADR 0017 has the reasoning.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.db.database import Database

# Pub/Sub's default message retention, for a subscription and for its dead-letter subscription.
PUBSUB_MESSAGE_RETENTION = timedelta(days=7)
# Redelivery (7 d) + dead-letter replay (7 d) + a day of margin.
MIN_INBOX_RETENTION = 2 * PUBSUB_MESSAGE_RETENTION + timedelta(days=1)
DEFAULT_INBOX_RETENTION = timedelta(days=30)
# Below MIN_INBOX_RETENTION, so any row an operator can still republish is in every inbox.
DEFAULT_OUTBOX_RETENTION = timedelta(days=7)
DEFAULT_BATCH = 1000

_PRUNE_OUTBOX = sa.text(
    "DELETE FROM outbox WHERE position IN ("
    " SELECT position FROM outbox"
    " WHERE published_at IS NOT NULL"
    " AND published_at < clock_timestamp() - make_interval(secs => :seconds)"
    " ORDER BY published_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " AND published_at IS NOT NULL"
    " AND published_at < clock_timestamp() - make_interval(secs => :seconds)"
)
_PRUNE_INBOX = sa.text(
    "DELETE FROM inbox WHERE (consumer, event_id) IN ("
    " SELECT consumer, event_id FROM inbox"
    " WHERE processed_at < clock_timestamp() - make_interval(secs => :seconds)"
    " ORDER BY processed_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)


class RetentionTooShortError(ValueError):
    """An inbox retention that would let a redelivered event be applied twice."""


def _positive_seconds(retention: timedelta) -> float:
    seconds = retention.total_seconds()
    if seconds <= 0:
        raise ValueError("a retention must be positive")
    return seconds


def check_inbox_retention(retention: timedelta) -> timedelta:
    """`retention` if it outlasts every redelivery and replay window, else raise."""
    if retention < MIN_INBOX_RETENTION:
        raise RetentionTooShortError(
            f"inbox retention {retention} is shorter than {MIN_INBOX_RETENTION} (Pub/Sub "
            "redelivery plus dead-letter replay): a late copy would be applied twice"
        )
    return retention


async def prune_outbox(
    session: AsyncSession, retention: timedelta, *, limit: int = DEFAULT_BATCH
) -> int:
    """Delete up to `limit` rows published more than `retention` ago; returns how many."""
    result = await session.execute(
        _PRUNE_OUTBOX, {"seconds": _positive_seconds(retention), "limit": limit}
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_inbox(
    session: AsyncSession, retention: timedelta, *, limit: int = DEFAULT_BATCH
) -> int:
    """Delete up to `limit` inbox rows processed more than `retention` ago; returns how many.

    Refuses a retention below `MIN_INBOX_RETENTION`.
    """
    seconds = _positive_seconds(check_inbox_retention(retention))
    result = await session.execute(_PRUNE_INBOX, {"seconds": seconds, "limit": limit})
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_outbox_fully(
    database: Database, retention: timedelta, *, batch: int = DEFAULT_BATCH
) -> int:
    """`prune_outbox` in short transactions until nothing is left to prune."""
    total = 0
    while True:
        async with database.transaction() as session:
            deleted = await prune_outbox(session, retention, limit=batch)
        total += deleted
        if deleted < batch:
            return total


async def prune_inbox_fully(
    database: Database, retention: timedelta, *, batch: int = DEFAULT_BATCH
) -> int:
    """`prune_inbox` in short transactions until nothing is left to prune."""
    check_inbox_retention(retention)
    total = 0
    while True:
        async with database.transaction() as session:
            deleted = await prune_inbox(session, retention, limit=batch)
        total += deleted
        if deleted < batch:
            return total
