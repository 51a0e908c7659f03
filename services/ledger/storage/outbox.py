"""Stages the ledger's events in the service outbox, in the unit of work's transaction.

All of a transaction's events go in one statement that does exactly what the chassis
`stage()` does per event — the subject lock, the relay's wake-up call, the row — since 2N round
trips under the chain lock would cap throughput (ADR 0007, ADR 0016).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from services.chassis.events import tracecontext
from services.chassis.events.outbox import NOTIFY_CHANNEL, SUBJECT_LOCK_CLASS, event_type
from services.chassis.events.subject import tenant_of_subject
from services.ledger.domain.events import EntryPosted, LedgerEvent
from services.ledger.domain.ports import Outbox
from services.ledger.events import SOURCE, outgoing
from services.ledger.storage.sql import Sql, query

# What `stage()` does per event, for all the events of a transaction in one round trip: the
# subject locks (in subject order), the relay's wake-up call (sent on commit), then the rows.
# The rows need the materialized `locked` row (its lock count is compared), so every lock is
# held before the first row is inserted, as with `stage()`'s two statements (ADR 0006).
_STAGE = query(
    "WITH locked AS MATERIALIZED ("
    " SELECT count(pg_advisory_xact_lock(:lock_class, hashtext(s.subject))) AS subjects,"
    " pg_notify(:channel, '') IS NOT NULL AS notified"
    " FROM (SELECT unnest(CAST(:subjects AS text[])) AS subject ORDER BY 1) AS s)"
    " INSERT INTO outbox (event_id, tenant_id, subject, type, source, time, data, traceparent,"
    " tracestate)"
    " SELECT e.event_id, e.tenant_id, e.subject, e.type, :source, :time, e.data, e.traceparent,"
    " e.tracestate"
    " FROM locked, unnest(CAST(:event_ids AS uuid[]), CAST(:tenants AS text[]),"
    " CAST(:subjects AS text[]), CAST(:types AS text[]), CAST(:data AS bytea[]),"
    " CAST(:traceparents AS text[]), CAST(:tracestates AS text[]))"
    " WITH ORDINALITY AS e (event_id, tenant_id, subject, type, data, traceparent, tracestate,"
    " position)"
    " WHERE locked.subjects = cardinality(CAST(:subjects AS text[])) AND locked.notified"
    " ORDER BY e.position"
)


class SqlOutbox(Outbox):
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def stage(self, events: Sequence[LedgerEvent]) -> None:
        # Staging locks each subject until commit: a stable order keeps transactions that
        # announce several aggregates from deadlocking.
        staged = sorted(
            ((*outgoing(event), _recorded_trace(event)) for event in events),
            key=lambda item: item[1],
        )
        if staged:
            await self._stage_many(staged)

    async def _stage_many(self, staged: Sequence[tuple[Message, str, str | None]]) -> None:
        subjects = [subject for _, subject, _ in staged]
        # The current span's context; outside any span (a group commit, ADR 0016) each
        # entry's event carries the trace its entry recorded.
        trace = tracecontext.capture()
        current = trace.get(tracecontext.TRACEPARENT)
        await self._sql.execute(
            _STAGE,
            {
                "lock_class": SUBJECT_LOCK_CLASS,
                "channel": NOTIFY_CHANNEL,
                "event_ids": [uuid.uuid4() for _ in staged],
                "tenants": [tenant_of_subject(subject) for subject in subjects],
                "subjects": subjects,
                "types": [event_type(message) for message, _, _ in staged],
                "data": [message.SerializeToString(deterministic=True) for message, _, _ in staged],
                "source": SOURCE,
                "time": datetime.now(UTC),
                "traceparents": [current or recorded for _, _, recorded in staged],
                "tracestates": [
                    trace.get(tracecontext.TRACESTATE) if current else None for _ in staged
                ],
            },
        )


def _recorded_trace(event: LedgerEvent) -> str | None:
    """A W3C traceparent for the trace and span an entry recorded (sampled), if it has one."""
    if isinstance(event, EntryPosted):
        link = event.entry.draft.trace
        if link.trace_id and link.span_id:
            return f"00-{link.trace_id}-{link.span_id}-01"
    return None
