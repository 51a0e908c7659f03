"""Accounts in PostgreSQL: the row holds the counters its CHECK constraints guard."""

from __future__ import annotations

from collections.abc import Iterable

from services.ledger.domain.accounts import Account, AccountState
from services.ledger.domain.ports import AccountRepository, AddOutcome
from services.ledger.storage import rows
from services.ledger.storage.sql import Sql, query

_INSERT = query(
    "INSERT INTO accounts (tenant_id, account_id, code, display_name, currency_code,"
    " account_type, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata,"
    " create_time, update_time)"
    " VALUES (:tenant, :account_id, :code, :display_name, :currency, :type, :dnec, :cned,"
    " CAST(:metadata AS jsonb), :now, :now)"
    " ON CONFLICT DO NOTHING RETURNING account_id"
)
_EXISTS = query("SELECT 1 FROM accounts WHERE tenant_id = :tenant AND account_id = :account_id")
_GET = query(
    f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND account_id = :account_id"
)
_LOCK = query(
    f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND account_id = ANY(CAST(:ids AS text[]))"
    " ORDER BY account_id FOR UPDATE"
)
_SAVE = query(
    "UPDATE accounts a SET debits_posted = s.dp, credits_posted = s.cp,"
    " debits_pending = s.dpe, credits_pending = s.cpe, state = s.state,"
    " close_time = s.close_time, update_time = s.update_time, version = s.version"
    " FROM unnest(CAST(:ids AS text[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]),"
    " CAST(:dpe AS bigint[]), CAST(:cpe AS bigint[]), CAST(:states AS text[]),"
    " CAST(:close_times AS timestamptz[]), CAST(:update_times AS timestamptz[]),"
    " CAST(:versions AS bigint[]))"
    " AS s (account_id, dp, cp, dpe, cpe, state, close_time, update_time, version)"
    " WHERE a.tenant_id = :tenant AND a.account_id = s.account_id"
)
_PAGE = query(
    f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts"  # noqa: S608 - constant column list
    " WHERE tenant_id = :tenant AND code > :after"
    " AND (CAST(:state AS text) IS NULL OR state = CAST(:state AS text))"
    " ORDER BY code LIMIT :limit"
)


def save_parameters(tenant: str, accounts: Iterable[Account]) -> dict[str, object]:
    """Parameters of `_SAVE` (also used by the journal's combined write)."""
    listed = list(accounts)
    return {
        "tenant": tenant,
        "ids": [a.account_id for a in listed],
        "dp": [a.balance.debits_posted for a in listed],
        "cp": [a.balance.credits_posted for a in listed],
        "dpe": [a.balance.debits_pending for a in listed],
        "cpe": [a.balance.credits_pending for a in listed],
        "states": [a.state.value for a in listed],
        "close_times": [a.close_time for a in listed],
        "update_times": [a.update_time for a in listed],
        "versions": [a.version for a in listed],
    }


class SqlAccounts(AccountRepository):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    async def add(self, account: Account) -> AddOutcome:
        spec = account.spec
        inserted = await self._sql.all(
            _INSERT,
            {
                "tenant": self._tenant,
                "account_id": account.account_id,
                "code": spec.code,
                "display_name": spec.display_name,
                "currency": spec.currency,
                "type": spec.type.value,
                "dnec": spec.debits_must_not_exceed_credits,
                "cned": spec.credits_must_not_exceed_debits,
                "metadata": rows.to_json(spec.metadata),
                "now": account.create_time,
            },
        )
        if bool(inserted):
            return AddOutcome.ADDED
        taken = await self._sql.all(
            _EXISTS, {"tenant": self._tenant, "account_id": account.account_id}
        )
        return AddOutcome.ID_TAKEN if taken else AddOutcome.CODE_TAKEN

    async def get(self, account_id: str) -> Account | None:
        row = await self._sql.first(_GET, {"tenant": self._tenant, "account_id": account_id})
        return None if row is None else rows.account(self._tenant, row)

    async def lock(self, account_ids: Iterable[str]) -> dict[str, Account]:
        ids = sorted(set(account_ids))
        result = await self._sql.all(_LOCK, {"tenant": self._tenant, "ids": ids})
        return {row.account_id: rows.account(self._tenant, row) for row in result}

    async def save(self, accounts: Iterable[Account]) -> None:
        parameters = save_parameters(self._tenant, accounts)
        if parameters["ids"]:
            await self._sql.all(_SAVE, parameters)

    async def page(self, after_code: str, limit: int, state: AccountState | None) -> list[Account]:
        result = await self._sql.all(
            _PAGE,
            {
                "tenant": self._tenant,
                "after": after_code,
                "state": None if state is None else state.value,
                "limit": limit,
            },
        )
        return [rows.account(self._tenant, row) for row in result]
