"""Holds in PostgreSQL: the reservation is immutable, the state changes once (triggers)."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain.holds import Hold, HoldState
from services.ledger.domain.ports import HoldRepository
from services.ledger.storage import rows
from services.ledger.storage.sql import Sql, query

_INSERT = query(
    "INSERT INTO holds (tenant_id, hold_id, debit_account_id, credit_account_id, currency_code,"
    " amount_minor, description, metadata, expire_time, trace_id, span_id, create_time,"
    " update_time)"
    " VALUES (:tenant, :hold_id, :debit, :credit, :currency, :amount, :description,"
    " CAST(:metadata AS jsonb), :expire_time, :trace_id, :span_id, :now, :now)"
    " ON CONFLICT (tenant_id, hold_id) DO NOTHING RETURNING hold_id"
)
_GET = query(
    f"SELECT {rows.HOLD_COLUMNS} FROM holds"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND hold_id = :hold_id"
)
_GET_LOCKED = query(
    f"SELECT {rows.HOLD_COLUMNS} FROM holds"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND hold_id = :hold_id FOR UPDATE"
)
_SAVE = query(
    "UPDATE holds SET state = :state, posted_amount_minor = :posted, journal_entry_id = :entry,"
    " void_reason = :reason, update_time = :update_time, finalize_time = :finalize_time"
    " WHERE tenant_id = :tenant AND hold_id = :hold_id"
)
_DUE = query(
    f"SELECT {rows.HOLD_COLUMNS} FROM holds"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND state = 'pending' AND expire_time <= :now"
    " ORDER BY expire_time LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_PAGE = query(
    f"SELECT {rows.HOLD_COLUMNS} FROM holds"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant"
    " AND (CAST(:before_time AS timestamptz) IS NULL"
    "      OR (create_time, hold_id) < (CAST(:before_time AS timestamptz), :before_id))"
    " AND (CAST(:account AS text) IS NULL OR debit_account_id = CAST(:account AS text)"
    "      OR credit_account_id = CAST(:account AS text))"
    " AND (CAST(:state AS text) IS NULL OR state = CAST(:state AS text))"
    " ORDER BY create_time DESC, hold_id DESC LIMIT :limit"
)


class SqlHolds(HoldRepository):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def add(self, hold: Hold) -> bool:
        inserted = await self._sql.all(
            _INSERT,
            {
                "tenant": self._tenant,
                "hold_id": hold.hold_id,
                "debit": hold.debit_account_id,
                "credit": hold.credit_account_id,
                "currency": hold.currency,
                "amount": hold.amount,
                "description": hold.description,
                "metadata": rows.to_json(hold.metadata),
                "expire_time": hold.expire_time,
                "trace_id": hold.trace.trace_id,
                "span_id": hold.trace.span_id,
                "now": hold.create_time,
            },
        )
        return bool(inserted)

    async def get(self, hold_id: str, *, lock: bool = False) -> Hold | None:
        statement = _GET_LOCKED if lock else _GET
        row = await self._sql.first(statement, {"tenant": self._tenant, "hold_id": hold_id})
        return None if row is None else rows.hold(self._tenant, row)

    async def save(self, hold: Hold) -> None:
        await self._sql.all(
            _SAVE,
            {
                "tenant": self._tenant,
                "hold_id": hold.hold_id,
                "state": hold.state.value,
                "posted": hold.posted_amount,
                "entry": hold.journal_entry_id,
                "reason": hold.void_reason,
                "update_time": hold.update_time,
                "finalize_time": hold.finalize_time,
            },
        )

    async def due(self, now: datetime, limit: int) -> list[Hold]:
        result = await self._sql.all(_DUE, {"tenant": self._tenant, "now": now, "limit": limit})
        return [rows.hold(self._tenant, row) for row in result]

    async def page(
        self,
        before: tuple[datetime, str] | None,
        limit: int,
        account_id: str | None,
        state: HoldState | None,
    ) -> list[Hold]:
        result = await self._sql.all(
            _PAGE,
            {
                "tenant": self._tenant,
                "before_time": None if before is None else before[0],
                "before_id": "" if before is None else before[1],
                "account": account_id,
                "state": None if state is None else state.value,
                "limit": limit,
            },
        )
        return [rows.hold(self._tenant, row) for row in result]
