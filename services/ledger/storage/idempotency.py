"""Idempotency keys in PostgreSQL: the primary key makes concurrent duplicates wait, then see."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.ledger.domain.ports import IdempotencyKey, IdempotencyKeys, StoredKey
from services.ledger.storage.sql import Sql, query

# What `json.dumps(value, sort_keys=True)` writes, without building an encoder per call.
_JSON = json.JSONEncoder(sort_keys=True)

# ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit or roll back.
_CLAIM = query("""
WITH input AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:methods AS text[]),
                         CAST(:fingerprints AS bytea[]), CAST(:results AS text[]))
           AS k (request_id, method, fingerprint, result)
), claimed AS (
    INSERT INTO idempotency_keys (tenant_id, request_id, method, fingerprint, result)
    SELECT :tenant, request_id, method, fingerprint, CAST(result AS jsonb) FROM input
    ON CONFLICT (tenant_id, request_id) DO NOTHING
    RETURNING request_id
)
SELECT CAST(request_id AS text) AS request_id FROM claimed
""")
# A new statement, hence a new snapshot: it sees the rows the conflicting claims committed.
_STORED = query(
    "SELECT CAST(request_id AS text) AS request_id, method, fingerprint, result"
    " FROM idempotency_keys"
    " WHERE tenant_id = :tenant AND request_id = ANY(CAST(:ids AS uuid[]))"
)


class SqlIdempotencyKeys(IdempotencyKeys):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def claim(
        self, keys: Sequence[IdempotencyKey], results: Sequence[Mapping[str, Any]]
    ) -> list[StoredKey | None]:
        ids = [k.request_id.lower() for k in keys]
        claimed = await self._sql.all(
            _CLAIM,
            {
                "tenant": self._tenant,
                "ids": ids,
                "methods": [k.method for k in keys],
                "fingerprints": [k.fingerprint for k in keys],
                "results": [_JSON.encode(dict(r)) for r in results],
            },
        )
        fresh = {row.request_id for row in claimed}
        others = [i for i in ids if i not in fresh]
        stored: dict[str, StoredKey] = {}
        if others:
            found = await self._sql.all(_STORED, {"tenant": self._tenant, "ids": others})
            stored = {
                row.request_id: StoredKey(row.method, bytes(row.fingerprint), row.result)
                for row in found
            }
        return [None if i in fresh else stored.get(i) for i in ids]
