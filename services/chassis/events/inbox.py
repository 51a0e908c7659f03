"""The inbox: which events a consumer has applied, written in the same transaction as the effect."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox import inbox_table
from services.chassis.events.subject import tenant_of_subject


async def record(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Claim `envelope.id` for `consumer` in the caller's transaction.

    True the first time; False if the event was applied already (a redelivery or a republish).
    A concurrent first delivery elsewhere makes this wait on the key until that transaction
    ends, then answer False if it committed, so two copies never both apply.
    """
    statement = (
        insert(inbox_table)
        .values(
            consumer=consumer,
            event_id=envelope.id,
            tenant_id=tenant_of_subject(envelope.subject),
            subject=envelope.subject,
            type=envelope.type,
        )
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(sa.literal(1))
    )
    return (await session.execute(statement)).first() is not None


async def record_many(
    session: AsyncSession, consumer: str, envelopes: Sequence[Envelope]
) -> set[str]:
    """Claim several events for `consumer` in one statement; returns the ids claimed now.

    The others were applied already (or appear twice in `envelopes`). Keys are inserted in
    the given order: callers running concurrently should sort them, so they never deadlock.
    """
    if not envelopes:
        return set()
    statement = (
        insert(inbox_table)
        .values(
            [
                {
                    "consumer": consumer,
                    "event_id": envelope.id,
                    "tenant_id": tenant_of_subject(envelope.subject),
                    "subject": envelope.subject,
                    "type": envelope.type,
                }
                for envelope in envelopes
            ]
        )
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(inbox_table.c.event_id)
    )
    return {str(event_id) for event_id in (await session.execute(statement)).scalars()}
