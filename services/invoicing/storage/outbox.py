"""Stages invoicing's events in the service outbox, in the unit of work's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.events.outbox import stage
from services.invoicing.domain.events import InvoicingEvent
from services.invoicing.domain.ports import Outbox
from services.invoicing.events import SOURCE, outgoing


class SqlOutbox(Outbox):
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def stage(self, events: Sequence[InvoicingEvent]) -> None:
        # In the order they happened: one invoice's events share its subject (ordering key).
        for event in events:
            message, subject = outgoing(event)
            await stage(self._session, message, subject=subject, source=SOURCE)
