"""Journal entries and postings in PostgreSQL: written in one statement, never changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.ledger.domain.accounts import Account
from services.ledger.domain.entries import EntryDraft, JournalEntry
from services.ledger.domain.ports import EntryFilter, JournalRepository
from services.ledger.storage import rows
from services.ledger.storage.accounts import save_parameters
from services.ledger.storage.sql import Sql, query

# Entries, their postings (only for entries actually inserted) and the accounts' counters, in
# one round trip. A taken entry id inserts nothing; the caller then rolls back.
_RECORD = query("""
WITH new_entries AS (
    INSERT INTO journal_entries (tenant_id, entry_id, description, metadata, effective_time,
                                 reverses_entry_id, hold_id, trace_id, span_id)
    SELECT :tenant, e.entry_id, e.description, CAST(e.metadata AS jsonb), e.effective_time,
           e.reverses, e.hold, e.trace_id, e.span_id
      FROM unnest(CAST(:entry_ids AS text[]), CAST(:descriptions AS text[]),
                  CAST(:metadatas AS text[]), CAST(:effective_times AS timestamptz[]),
                  CAST(:reverses AS text[]), CAST(:holds AS text[]),
                  CAST(:trace_ids AS text[]), CAST(:span_ids AS text[]))
           AS e (entry_id, description, metadata, effective_time, reverses, hold, trace_id,
                 span_id)
    ON CONFLICT (tenant_id, entry_id) DO NOTHING
    RETURNING entry_id
), new_postings AS (
    INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,
                          amount_minor, memo)
    SELECT :tenant, p.entry_id, p.posting_index, p.account_id, p.currency_code,
           p.amount_minor, p.memo
      FROM unnest(CAST(:p_entry_ids AS text[]), CAST(:p_indexes AS smallint[]),
                  CAST(:p_accounts AS text[]), CAST(:p_currencies AS text[]),
                  CAST(:p_amounts AS bigint[]), CAST(:p_memos AS text[]))
           AS p (entry_id, posting_index, account_id, currency_code, amount_minor, memo)
      JOIN new_entries USING (entry_id)
    RETURNING 1
), saved AS (
    UPDATE accounts a SET debits_posted = s.dp, credits_posted = s.cp,
           debits_pending = s.dpe, credits_pending = s.cpe, state = s.state,
           close_time = s.close_time, update_time = s.update_time, version = s.version
      FROM unnest(CAST(:ids AS text[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]),
                  CAST(:dpe AS bigint[]), CAST(:cpe AS bigint[]), CAST(:states AS text[]),
                  CAST(:close_times AS timestamptz[]), CAST(:update_times AS timestamptz[]),
                  CAST(:versions AS bigint[]))
           AS s (account_id, dp, cp, dpe, cpe, state, close_time, update_time, version)
     WHERE a.tenant_id = :tenant AND a.account_id = s.account_id
    RETURNING 1
)
SELECT (SELECT array_agg(entry_id) FROM new_entries) AS inserted,
       (SELECT count(*) FROM new_postings) AS postings,
       (SELECT count(*) FROM saved) AS accounts
""")
_LOCK = query(
    "SELECT 1 FROM journal_entries WHERE tenant_id = :tenant AND entry_id = :entry_id FOR UPDATE"
)
_GET_MANY = query(
    rows.ENTRY_SELECT + " WHERE e.tenant_id = :tenant AND e.entry_id = ANY(CAST(:ids AS text[]))"
)
_PAGE = query(
    rows.ENTRY_SELECT  # noqa: S608 - constant SQL; values are bound parameters
    + """ WHERE c.tenant_id = :tenant AND c.sequence > :after
       AND (CAST(:start AS timestamptz) IS NULL OR c.create_time >= CAST(:start AS timestamptz))
       AND (CAST(:end AS timestamptz) IS NULL OR c.create_time < CAST(:end AS timestamptz))
       AND (CAST(:metadata AS jsonb) IS NULL OR e.metadata @> CAST(:metadata AS jsonb))
       AND (CAST(:account AS text) IS NULL OR EXISTS (
            SELECT 1 FROM postings q WHERE q.tenant_id = e.tenant_id
               AND q.entry_id = e.entry_id AND q.account_id = CAST(:account AS text)))
     ORDER BY c.sequence LIMIT :limit"""
)


class SqlJournal(JournalRepository):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def record(self, drafts: Sequence[EntryDraft], accounts: Iterable[Account]) -> str | None:
        postings = [(d.entry_id, i, p) for d in drafts for i, p in enumerate(d.postings)]
        parameters = save_parameters(self._tenant, accounts)
        parameters.update(
            entry_ids=[d.entry_id for d in drafts],
            descriptions=[d.description for d in drafts],
            metadatas=[rows.to_json(d.metadata) for d in drafts],
            effective_times=[d.effective_time for d in drafts],
            reverses=[d.reverses for d in drafts],
            holds=[d.hold for d in drafts],
            trace_ids=[d.trace.trace_id for d in drafts],
            span_ids=[d.trace.span_id for d in drafts],
            p_entry_ids=[e for e, _, _ in postings],
            p_indexes=[i for _, i, _ in postings],
            p_accounts=[p.account_id for _, _, p in postings],
            p_currencies=[p.currency for _, _, p in postings],
            p_amounts=[p.amount for _, _, p in postings],
            p_memos=[p.memo for _, _, p in postings],
        )
        row = await self._sql.one(_RECORD, parameters)
        inserted = set(row.inserted or ())
        for draft in drafts:
            if draft.entry_id not in inserted:
                return draft.entry_id
        return None

    async def lock(self, entry_id: str) -> bool:
        found = await self._sql.all(_LOCK, {"tenant": self._tenant, "entry_id": entry_id})
        return bool(found)

    async def get(self, entry_id: str) -> JournalEntry | None:
        found = await self.get_many([entry_id])
        return found[0] if found else None

    async def get_many(self, entry_ids: Sequence[str]) -> list[JournalEntry]:
        result = await self._sql.all(_GET_MANY, {"tenant": self._tenant, "ids": list(entry_ids)})
        by_id = {row.entry_id: rows.entry(self._tenant, row) for row in result}
        return [by_id[i] for i in entry_ids if i in by_id]

    async def page(self, after_sequence: int, limit: int, where: EntryFilter) -> list[JournalEntry]:
        result = await self._sql.all(
            _PAGE,
            {
                "tenant": self._tenant,
                "after": after_sequence,
                "start": where.start_time,
                "end": where.end_time,
                "metadata": rows.to_json(where.metadata) if where.metadata else None,
                "account": where.account_id,
                "limit": limit,
            },
        )
        return [rows.entry(self._tenant, row) for row in result]
