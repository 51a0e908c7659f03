"""Balances as of a time and account statements, summed from postings in chain order."""

from __future__ import annotations

from datetime import datetime

from services.ledger.domain.accounts import Balance
from services.ledger.domain.ports import (
    BalanceSnapshot,
    Reports,
    StatementLine,
    StatementTotals,
)
from services.ledger.storage.sql import Sql, query

# Current counters and the last sequence touching the account, from one snapshot.
_CURRENT = query("""
SELECT a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
       (SELECT coalesce(max(c.sequence), 0)
          FROM postings p JOIN entry_chain c USING (tenant_id, entry_id)
         WHERE p.tenant_id = :tenant AND p.account_id = :account) AS last_sequence
  FROM accounts a WHERE a.tenant_id = :tenant AND a.account_id = :account
""")
_AS_OF = query("""
SELECT coalesce(sum(p.amount_minor) FILTER (WHERE p.amount_minor > 0), 0) AS debits_posted,
       coalesce(-sum(p.amount_minor) FILTER (WHERE p.amount_minor < 0), 0) AS credits_posted,
       coalesce(max(c.sequence), 0) AS last_sequence,
       (SELECT coalesce(sum(h.amount_minor), 0) FROM holds h
         WHERE h.tenant_id = :tenant AND h.debit_account_id = :account
           AND h.create_time <= :as_of
           AND (h.finalize_time IS NULL OR h.finalize_time > :as_of)) AS debits_pending,
       (SELECT coalesce(sum(h.amount_minor), 0) FROM holds h
         WHERE h.tenant_id = :tenant AND h.credit_account_id = :account
           AND h.create_time <= :as_of
           AND (h.finalize_time IS NULL OR h.finalize_time > :as_of)) AS credits_pending
  FROM postings p JOIN entry_chain c USING (tenant_id, entry_id)
 WHERE p.tenant_id = :tenant AND p.account_id = :account AND c.create_time <= :as_of
""")
_STATEMENT = query("""
WITH lines AS (
    SELECT p.amount_minor, c.sequence,
           (CAST(:start AS timestamptz) IS NULL
            OR c.create_time >= CAST(:start AS timestamptz)) AS in_range
      FROM postings p JOIN entry_chain c USING (tenant_id, entry_id)
     WHERE p.tenant_id = :tenant AND p.account_id = :account AND c.create_time < :end
)
SELECT coalesce(sum(amount_minor) FILTER (WHERE NOT in_range AND amount_minor > 0), 0) AS od,
       coalesce(-sum(amount_minor) FILTER (WHERE NOT in_range AND amount_minor < 0), 0) AS oc,
       coalesce(sum(amount_minor) FILTER (WHERE in_range AND amount_minor > 0), 0) AS debits,
       coalesce(-sum(amount_minor) FILTER (WHERE in_range AND amount_minor < 0), 0) AS credits,
       count(*) FILTER (WHERE in_range) AS line_count,
       coalesce(min(sequence) FILTER (WHERE in_range), 0) AS first_sequence,
       coalesce(max(sequence) FILTER (WHERE in_range), 0) AS last_sequence
  FROM lines
""")
# Posted counters before a page: everything before `start`, and the range's lines up to the
# cursor (sequence order is create_time order, so this is a prefix of the account's history).
_PAGE_OPENING = query("""
SELECT coalesce(sum(p.amount_minor) FILTER (WHERE p.amount_minor > 0), 0) AS debits,
       coalesce(-sum(p.amount_minor) FILTER (WHERE p.amount_minor < 0), 0) AS credits
  FROM postings p JOIN entry_chain c USING (tenant_id, entry_id)
 WHERE p.tenant_id = :tenant AND p.account_id = :account
   AND ((CAST(:start AS timestamptz) IS NOT NULL AND c.create_time < CAST(:start AS timestamptz))
        OR (c.create_time < :end
            AND (CAST(:start AS timestamptz) IS NULL
                 OR c.create_time >= CAST(:start AS timestamptz))
            AND (c.sequence, p.posting_index) <= (:after_sequence, :after_index)))
""")
_LINES = query("""
SELECT e.entry_id, c.sequence, p.posting_index, c.create_time, e.effective_time,
       e.description, p.memo, p.currency_code, p.amount_minor, e.reverses_entry_id
  FROM postings p
  JOIN entry_chain c USING (tenant_id, entry_id)
  JOIN journal_entries e USING (tenant_id, entry_id)
 WHERE p.tenant_id = :tenant AND p.account_id = :account AND c.create_time < :end
   AND (CAST(:start AS timestamptz) IS NULL OR c.create_time >= CAST(:start AS timestamptz))
   AND (c.sequence, p.posting_index) > (:after_sequence, :after_index)
 ORDER BY c.sequence, p.posting_index
 LIMIT :limit
""")


class SqlReports(Reports):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def balance(self, account_id: str, as_of: datetime | None) -> BalanceSnapshot:
        parameters = {"tenant": self._tenant, "account": account_id, "as_of": as_of}
        row = await self._sql.one(_CURRENT if as_of is None else _AS_OF, parameters)
        balance = Balance(
            int(row.debits_posted),
            int(row.credits_posted),
            int(row.debits_pending),
            int(row.credits_pending),
        )
        return BalanceSnapshot(balance, int(row.last_sequence))

    async def statement(
        self, account_id: str, start: datetime | None, end: datetime
    ) -> StatementTotals:
        row = await self._sql.one(
            _STATEMENT,
            {"tenant": self._tenant, "account": account_id, "start": start, "end": end},
        )
        return StatementTotals(
            opening=Balance(int(row.od), int(row.oc)),
            debits=int(row.debits),
            credits=int(row.credits),
            line_count=int(row.line_count),
            first_sequence=int(row.first_sequence),
            last_sequence=int(row.last_sequence),
        )

    async def lines(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime,
        after: tuple[int, int],
        limit: int,
    ) -> tuple[Balance, list[StatementLine]]:
        parameters = {
            "tenant": self._tenant,
            "account": account_id,
            "start": start,
            "end": end,
            "after_sequence": after[0],
            "after_index": after[1],
            "limit": limit,
        }
        opening = await self._sql.one(_PAGE_OPENING, parameters)
        result = await self._sql.all(_LINES, parameters)
        lines = [
            StatementLine(
                entry_id=row.entry_id,
                sequence=row.sequence,
                posting_index=row.posting_index,
                create_time=row.create_time,
                effective_time=row.effective_time,
                description=row.description,
                memo=row.memo,
                currency=row.currency_code,
                amount=row.amount_minor,
                reverses=row.reverses_entry_id,
            )
            for row in result
        ]
        return Balance(int(opening.debits), int(opening.credits)), lines
