"""The tenant's hash chain in PostgreSQL: extended by `ledger_chain_append`, read to verify."""

from __future__ import annotations

from collections.abc import Sequence

from services.ledger.domain.chain import StoredLink
from services.ledger.domain.entries import ChainLink, EntryDraft
from services.ledger.domain.ports import Chain
from services.ledger.storage import rows
from services.ledger.storage.sql import Sql, query

_APPEND = query(
    "SELECT o_entry_id, o_sequence, o_previous_hash, o_hash, o_create_time"
    " FROM ledger_chain_append(:tenant, CAST(:ids AS text[]), CAST(:contents AS bytea[]))"
)
_HASH_AT = query("SELECT hash FROM entry_chain WHERE tenant_id = :tenant AND sequence = :sequence")
_HEAD = query(
    "SELECT greatest(coalesce((SELECT sequence FROM chain_heads WHERE tenant_id = :tenant), 0),"
    " coalesce((SELECT max(sequence) FROM entry_chain WHERE tenant_id = :tenant), 0))"
)
_LINKS = query(
    rows.ENTRY_SELECT + " WHERE c.tenant_id = :tenant AND c.sequence BETWEEN :first AND :last"
    " ORDER BY c.sequence LIMIT :limit"
)


class SqlChain(Chain):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def append(
        self, drafts: Sequence[EntryDraft], contents: Sequence[bytes]
    ) -> list[ChainLink]:
        result = await self._sql.all(
            _APPEND,
            {
                "tenant": self._tenant,
                "ids": [d.entry_id for d in drafts],
                "contents": list(contents),
            },
        )
        links = {
            row.o_entry_id: ChainLink(
                row.o_sequence, bytes(row.o_previous_hash), bytes(row.o_hash), row.o_create_time
            )
            for row in result
        }
        return [links[d.entry_id] for d in drafts]

    async def hash_at(self, sequence: int) -> bytes | None:
        row = await self._sql.first(_HASH_AT, {"tenant": self._tenant, "sequence": sequence})
        return None if row is None else bytes(row.hash)

    async def head_sequence(self) -> int:
        return int((await self._sql.one(_HEAD, {"tenant": self._tenant}))[0])

    async def links(self, first: int, last: int, limit: int) -> list[StoredLink]:
        result = await self._sql.all(
            _LINKS, {"tenant": self._tenant, "first": first, "last": last, "limit": limit}
        )
        return [StoredLink(rows.link(row), rows.draft(row)) for row in result]
