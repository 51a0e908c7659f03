"""Idempotency records: request_id -> request fingerprint -> first response.

A request claims its id as PENDING with a lease; the response is stored (DONE) in the same
transaction as the effect it describes. A concurrent twin finds the PENDING record and waits;
a PENDING record whose lease ran out (its owner crashed) is taken over, which is safe because
every downstream call (PSP, ledger) carries a key derived from the same request_id.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.payments.storage.sql import Sql, query

# ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit or roll back.
_CLAIM = query(
    "INSERT INTO idempotency_records (tenant_id, request_id, method, fingerprint, state,"
    " lease_until) VALUES (:tenant, :request_id, :method, :fingerprint, 'PENDING', :until)"
    " ON CONFLICT (tenant_id, request_id) DO NOTHING RETURNING state"
)
_GET = query(
    "SELECT method, fingerprint, state, response, lease_until FROM idempotency_records"
    " WHERE tenant_id = :tenant AND request_id = :request_id"
)
_TAKE_OVER = query(
    "UPDATE idempotency_records SET lease_until = :until"
    " WHERE tenant_id = :tenant AND request_id = :request_id AND state = 'PENDING'"
    " AND lease_until < :now RETURNING state"
)
_COMPLETE = query(
    "UPDATE idempotency_records SET state = 'DONE', response = :response,"
    " complete_time = :now WHERE tenant_id = :tenant AND request_id = :request_id"
    " AND state = 'PENDING'"
)
_RELEASE = query(
    "DELETE FROM idempotency_records WHERE tenant_id = :tenant AND request_id = :request_id"
    " AND state = 'PENDING'"
)


class ClaimState(enum.Enum):
    NEW = "NEW"
    """This request owns the id now: do the work."""
    IN_PROGRESS = "IN_PROGRESS"
    """A twin is working on it: wait and look again."""
    DONE = "DONE"
    """Answered before: replay `response`."""


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    method: str
    fingerprint: bytes
    response: bytes | None = None


class SqlIdempotency:
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def claim(
        self, request_id: str, method: str, fingerprint: bytes, now: datetime, lease: float
    ) -> Claim:
        key = {"tenant": self._tenant, "request_id": uuid.UUID(request_id)}
        until = now + timedelta(seconds=lease)
        inserted = await self._sql.first(
            _CLAIM, {**key, "method": method, "fingerprint": fingerprint, "until": until}
        )
        if inserted is not None:
            return Claim(ClaimState.NEW, method, fingerprint)
        row = await self._sql.first(_GET, key)
        if row is None:  # released between the two statements: the caller tries again
            return Claim(ClaimState.IN_PROGRESS, method, fingerprint)
        stored = Claim(ClaimState.IN_PROGRESS, row.method, bytes(row.fingerprint))
        if row.method != method or bytes(row.fingerprint) != fingerprint:
            return stored  # the caller compares and refuses
        if row.state == "DONE":
            return Claim(ClaimState.DONE, row.method, stored.fingerprint, bytes(row.response))
        taken = await self._sql.first(_TAKE_OVER, {**key, "until": until, "now": now})
        if taken is not None:
            return Claim(ClaimState.NEW, method, fingerprint)
        return stored

    async def complete(self, request_id: str, response: bytes, now: datetime) -> None:
        await self._sql.execute(
            _COMPLETE,
            {
                "tenant": self._tenant,
                "request_id": uuid.UUID(request_id),
                "response": response,
                "now": now,
            },
        )

    async def release(self, request_id: str) -> None:
        """Forget a PENDING claim whose request failed without effect (retrying resumes)."""
        await self._sql.execute(
            _RELEASE, {"tenant": self._tenant, "request_id": uuid.UUID(request_id)}
        )
