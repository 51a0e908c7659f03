"""`ledger_postings_due`: journals recorded in the change's transaction (SqlLedgerQueue) and
the poster worker's scan (claim, mark posted, put off after a failure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoicing.domain.journals import Journal
from services.invoicing.domain.ports import LedgerQueue

_QUEUE = text(
    "INSERT INTO ledger_postings_due"
    " (tenant_id, journal_id, movement, document, currency_code, journal)"
    " VALUES (:tenant, :journal_id, :movement, :document, :currency, CAST(:journal AS jsonb))"
    " ON CONFLICT (tenant_id, journal_id) DO NOTHING"
)
# Oldest first; rows another poster holds are skipped, so posters never wait on each other.
_CLAIM = text(
    "SELECT tenant_id, journal, attempts FROM ledger_postings_due"
    " WHERE posted_time IS NULL AND next_attempt_time <= now()"
    " ORDER BY create_time, journal_id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_POSTED = text(
    "UPDATE ledger_postings_due SET posted_time = now(), ledger_entry = :entry,"
    " attempts = attempts + 1, last_error = ''"
    " WHERE tenant_id = :tenant AND journal_id = :journal_id AND posted_time IS NULL"
)
_FAILED = text(
    "UPDATE ledger_postings_due SET attempts = attempts + 1, last_error = :error,"
    " next_attempt_time = now() + make_interval(secs => :delay)"
    " WHERE tenant_id = :tenant AND journal_id = :journal_id AND posted_time IS NULL"
)
_PRUNE = text(
    "DELETE FROM ledger_postings_due WHERE posted_time < now() - make_interval(secs => :age)"
)
_BACKLOG = text(
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(create_time)), 0)"
    " FROM ledger_postings_due WHERE posted_time IS NULL"
)


class SqlLedgerQueue(LedgerQueue):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def queue(self, journals: Sequence[Journal]) -> None:
        for journal in journals:
            if journal.tenant != self._tenant:
                raise ValueError(f"journal of tenant {journal.tenant} in {self._tenant}'s work")
            await self._session.execute(
                _QUEUE,
                {
                    "tenant": journal.tenant,
                    "journal_id": journal.journal_id,
                    "movement": journal.movement,
                    "document": journal.credit_note or journal.invoice,
                    "currency": journal.currency_code,
                    "journal": json.dumps(journal.to_json()),
                },
            )


@dataclass(frozen=True, slots=True)
class DueJournal:
    journal: Journal
    attempts: int


async def claim_due(session: AsyncSession, limit: int) -> list[DueJournal]:
    """Up to `limit` due journals, locked by this transaction until it ends."""
    rows = (await session.execute(_CLAIM, {"limit": limit})).all()
    return [DueJournal(Journal.from_json(row.journal), row.attempts) for row in rows]


async def mark_posted(session: AsyncSession, journal: Journal, entry: str) -> None:
    await session.execute(
        _POSTED, {"tenant": journal.tenant, "journal_id": journal.journal_id, "entry": entry}
    )


async def put_off(session: AsyncSession, journal: Journal, error: str, delay: timedelta) -> None:
    await session.execute(
        _FAILED,
        {
            "tenant": journal.tenant,
            "journal_id": journal.journal_id,
            "error": error[:1000],
            "delay": delay.total_seconds(),
        },
    )


async def backlog(session: AsyncSession) -> tuple[int, float]:
    """(journals not yet posted, age in seconds of the oldest)."""
    count, age = (await session.execute(_BACKLOG)).one()
    return int(count), float(age)


async def prune_posted(session: AsyncSession, older_than: timedelta) -> int:
    """Delete journals posted more than `older_than` ago (the ledger keeps the entries)."""
    result = await session.execute(_PRUNE, {"age": older_than.total_seconds()})
    return int(result.rowcount)  # type: ignore[attr-defined]
