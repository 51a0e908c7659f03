"""Reconciliation reports (per tenant) and the service-wide queue of unfinished runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.payments.storage.sql import Sql, query

_INSERT = query(
    "INSERT INTO reconciliation_reports (tenant_id, report_id, psp, state, request_id,"
    " request_fingerprint, create_time, report)"
    " VALUES (:tenant, :report_id, :psp, :state, :request_id, :fingerprint, :create_time,"
    " :report) ON CONFLICT (tenant_id, report_id) DO NOTHING RETURNING report_id"
)
_GET = query(
    "SELECT report FROM reconciliation_reports WHERE tenant_id = :tenant AND report_id = :report_id"
)
_FINISH = query(
    "UPDATE reconciliation_reports SET state = :state, complete_time = :complete_time,"
    " report = :report WHERE tenant_id = :tenant AND report_id = :report_id"
    " AND state = 'RUNNING' RETURNING report_id"
)
_PAGE = query(
    "SELECT report_id, create_time, report FROM reconciliation_reports"
    " WHERE tenant_id = :tenant AND (CAST(:psp AS text) IS NULL OR psp = :psp)"
    " AND (CAST(:after_time AS timestamptz) IS NULL"
    "      OR (create_time, report_id) < (:after_time, :after_id))"
    " ORDER BY create_time DESC, report_id DESC LIMIT :limit"
)
_QUEUE = query(
    "INSERT INTO reconciliation_runs (tenant_id, report_id, lease_until)"
    " VALUES (:tenant, :report_id, :until) ON CONFLICT (tenant_id, report_id) DO NOTHING"
)
_DEQUEUE = query(
    "DELETE FROM reconciliation_runs WHERE tenant_id = :tenant AND report_id = :report_id"
)
_RELEASE = query(
    "UPDATE reconciliation_runs SET lease_until = :now"
    " WHERE tenant_id = :tenant AND report_id = :report_id"
)
_CLAIM_DUE = query(
    "UPDATE reconciliation_runs SET lease_until = :until, attempts = attempts + 1"
    " WHERE (tenant_id, report_id) IN (SELECT tenant_id, report_id FROM reconciliation_runs"
    "   WHERE lease_until <= :now ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " RETURNING tenant_id, report_id, attempts"
)


@dataclass(frozen=True, slots=True)
class StoredReport:
    report_id: str
    create_time: datetime
    report: bytes


@dataclass(frozen=True, slots=True)
class DueRun:
    tenant: str
    report_id: str
    attempts: int


class SqlReconciliationReports:
    """One tenant's reconciliation reports (row-level security keeps the others out)."""

    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def insert(
        self,
        *,
        report_id: str,
        psp: str,
        state: str,
        request_id: str,
        fingerprint: bytes,
        create_time: datetime,
        report: bytes,
    ) -> bool:
        """Store a new report; False when the tenant already has one with this id."""
        inserted = await self._sql.first(
            _INSERT,
            {
                "tenant": self._tenant,
                "report_id": report_id,
                "psp": psp,
                "state": state,
                "request_id": uuid.UUID(request_id),
                "fingerprint": fingerprint,
                "create_time": create_time,
                "report": report,
            },
        )
        return inserted is not None

    async def get(self, report_id: str) -> bytes | None:
        row = await self._sql.first(_GET, {"tenant": self._tenant, "report_id": report_id})
        return None if row is None else bytes(row.report)

    async def finish(
        self, report_id: str, *, state: str, complete_time: datetime, report: bytes
    ) -> bool:
        """Store the final report of a RUNNING one; False when it was finished already."""
        updated = await self._sql.first(
            _FINISH,
            {
                "tenant": self._tenant,
                "report_id": report_id,
                "state": state,
                "complete_time": complete_time,
                "report": report,
            },
        )
        return updated is not None

    async def page(
        self, psp: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[StoredReport]:
        """Newest first, after the cursor (create_time, report_id) when given."""
        rows = await self._sql.all(
            _PAGE,
            {
                "tenant": self._tenant,
                "psp": psp,
                "after_time": after[0] if after else None,
                "after_id": after[1] if after else "",
                "limit": limit,
            },
        )
        return [StoredReport(r.report_id, r.create_time, bytes(r.report)) for r in rows]


class SqlReconciliationRuns:
    """The service-wide queue of runs to finish: queued with the RUNNING report, dequeued with
    the final one; a run whose lease ran out is the background worker's to resume."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def queue(self, tenant: str, report_id: str, lease_until: datetime) -> None:
        await self._sql.execute(
            _QUEUE, {"tenant": tenant, "report_id": report_id, "until": lease_until}
        )

    async def dequeue(self, tenant: str, report_id: str) -> None:
        await self._sql.execute(_DEQUEUE, {"tenant": tenant, "report_id": report_id})

    async def release(self, tenant: str, report_id: str, now: datetime) -> None:
        """End this process's lease on a run it stopped (draining): resume it right away."""
        await self._sql.execute(_RELEASE, {"tenant": tenant, "report_id": report_id, "now": now})

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list[DueRun]:
        """Runs whose lease ran out, leased again to the caller."""
        rows = await self._sql.all(
            _CLAIM_DUE,
            {"now": now, "until": now + timedelta(seconds=lease_seconds), "limit": limit},
        )
        return [DueRun(r.tenant_id, r.report_id, r.attempts) for r in rows]
