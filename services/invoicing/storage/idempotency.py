"""Idempotency keys: the first request with an id stores its response; a repeat gets it back.

The claim is an INSERT on the key, so a concurrent duplicate waits for the first transaction
and then finds its stored response (or, if it rolled back, claims the key itself).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoicing.domain.ports import IdempotencyKeys, StoredResponse

_CLAIM = text(
    "INSERT INTO idempotency_keys (tenant_id, request_id, method, fingerprint)"
    " VALUES (:tenant, CAST(:request_id AS uuid), :method, :fingerprint)"
    " ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING 1"
)
_STORED = text(
    "SELECT method, fingerprint, response FROM idempotency_keys"
    " WHERE tenant_id = :tenant AND request_id = CAST(:request_id AS uuid)"
)
_COMPLETE = text(
    "UPDATE idempotency_keys SET response = :response"
    " WHERE tenant_id = :tenant AND request_id = CAST(:request_id AS uuid)"
)


class SqlIdempotencyKeys(IdempotencyKeys):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def claim(
        self, request_id: str, method: str, fingerprint: bytes
    ) -> StoredResponse | None:
        """None when this transaction owns the key now; else what the first request stored."""
        params = {"tenant": self._tenant, "request_id": request_id}
        claimed = await self._session.execute(
            _CLAIM, {**params, "method": method, "fingerprint": fingerprint}
        )
        if claimed.first() is not None:
            return None
        row = (await self._session.execute(_STORED, params)).one()
        return StoredResponse(row.method, bytes(row.fingerprint), bytes(row.response or b""))

    async def complete(self, request_id: str, response: bytes) -> None:
        await self._session.execute(
            _COMPLETE, {"tenant": self._tenant, "request_id": request_id, "response": response}
        )
