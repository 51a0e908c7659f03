"""Stages the ledger's events in the service outbox, in the unit of work's transaction.

One event goes through the chassis `stage()`. Several (a batch of entries) go in two
statements that do exactly what `stage()` does per event — the subject locks, then the rows —
since 2N round trips under the chain lock would cap batch throughput (ADR 0007).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.events import tracecontext
from services.chassis.events.outbox import SUBJECT_LOCK_CLASS, event_type, stage
from services.chassis.events.subject import tenant_of_subject
from services.ledger.domain.events import LedgerEvent
from services.ledger.domain.ports import Outbox
from services.ledger.events import SOURCE, outgoing
from services.ledger.storage.sql import Sql, query

_LOCK_SUBJECTS = query(
    "SELECT count(pg_advisory_xact_lock(:lock_class, hashtext(s.subject)))"
    " FROM (SELECT unnest(CAST(:subjects AS text[])) AS subject ORDER BY 1) AS s"
)
_INSERT = query(
    "INSERT INTO outbox (event_id, tenant_id, subject, type, source, time, data, traceparent,"
    " tracestate)"
    " SELECT e.event_id, e.tenant_id, e.subject, e.type, :source, :time, e.data, :traceparent,"
    " :tracestate"
    " FROM unnest(CAST(:event_ids AS uuid[]), CAST(:tenants AS text[]),"
    " CAST(:subjects AS text[]), CAST(:types AS text[]), CAST(:data AS bytea[]))"
    " WITH ORDINALITY AS e (event_id, tenant_id, subject, type, data, position)"
    " ORDER BY e.position"
)


class SqlOutbox(Outbox):
    def __init__(self, session: AsyncSession, sql: Sql) -> None:
        self._session = session
        self._sql = sql

    async def stage(self, events: Sequence[LedgerEvent]) -> None:
        # Staging locks each subject until commit: a stable order keeps transactions that
        # announce several aggregates from deadlocking.
        staged = sorted((outgoing(event) for event in events), key=lambda pair: pair[1])
        if len(staged) == 1:
            message, subject = staged[0]
            await stage(self._session, message, subject=subject, source=SOURCE)
        elif staged:
            await self._stage_many(staged)

    async def _stage_many(self, staged: Sequence[tuple[Message, str]]) -> None:
        subjects = [subject for _, subject in staged]
        await self._sql.execute(
            _LOCK_SUBJECTS, {"lock_class": SUBJECT_LOCK_CLASS, "subjects": subjects}
        )
        trace = tracecontext.capture()
        await self._sql.execute(
            _INSERT,
            {
                "event_ids": [uuid.uuid4() for _ in staged],
                "tenants": [tenant_of_subject(subject) for subject in subjects],
                "subjects": subjects,
                "types": [event_type(message) for message, _ in staged],
                "data": [message.SerializeToString(deterministic=True) for message, _ in staged],
                "source": SOURCE,
                "time": datetime.now(UTC),
                "traceparent": trace.get(tracecontext.TRACEPARENT),
                "tracestate": trace.get(tracecontext.TRACESTATE),
            },
        )
