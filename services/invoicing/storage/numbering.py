"""Gapless counters and the tenant's numbering config in PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoicing.domain.numbering import NumberingConfig
from services.invoicing.domain.ports import Counters, NumberingConfigs
from services.invoicing.storage.documents import config_from, config_json

# One statement: a new series starts at :start; an existing one moves on by one. The row stays
# locked until the issuing transaction ends, so concurrent issuers queue here and a rollback
# hands the number back. `next_sequence - 1` is the number this transaction took.
_TAKE = text(
    "INSERT INTO number_counters (tenant_id, series, next_sequence)"
    " VALUES (:tenant, :series, :start + 1)"
    " ON CONFLICT (tenant_id, series)"
    " DO UPDATE SET next_sequence = number_counters.next_sequence + 1"
    " RETURNING next_sequence - 1 AS taken"
)
_PEEK = text(
    "SELECT next_sequence FROM number_counters WHERE tenant_id = :tenant AND series = :series"
)
_GET_CONFIG = text("SELECT document FROM numbering_configs WHERE tenant_id = :tenant")
_SAVE_CONFIG = text(
    "INSERT INTO numbering_configs (tenant_id, document, version, update_time)"
    " VALUES (:tenant, CAST(:document AS jsonb), :version, :update_time)"
    " ON CONFLICT (tenant_id) DO UPDATE SET document = EXCLUDED.document,"
    " version = EXCLUDED.version, update_time = EXCLUDED.update_time"
    " WHERE numbering_configs.version < EXCLUDED.version"
)


class SqlCounters(Counters):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def take(self, series: str, start: int) -> int:
        row = (
            await self._session.execute(
                _TAKE, {"tenant": self._tenant, "series": series, "start": start}
            )
        ).one()
        return int(row.taken)

    async def peek(self, series: str) -> int | None:
        row = (
            await self._session.execute(_PEEK, {"tenant": self._tenant, "series": series})
        ).first()
        return None if row is None else int(row.next_sequence)


class SqlNumberingConfigs(NumberingConfigs):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def get(self) -> NumberingConfig:
        row = (await self._session.execute(_GET_CONFIG, {"tenant": self._tenant})).first()
        return NumberingConfig() if row is None else config_from(row.document)

    async def save(self, config: NumberingConfig) -> None:
        result = await self._session.execute(
            _SAVE_CONFIG,
            {
                "tenant": self._tenant,
                "document": config_json(config),
                "version": config.version,
                "update_time": config.update_time,
            },
        )
        if getattr(result, "rowcount", 1) != 1:
            raise RuntimeError("lost update of the numbering config")
