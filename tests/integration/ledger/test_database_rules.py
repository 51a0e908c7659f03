"""The database itself refuses what the ledger forbids, whatever the application sends."""

import uuid

import pytest
from psycopg import errors as pg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


@pytest.fixture
async def books(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    await ledger.post(("cash", 100), ("sales", -100), entry_id="e1")
    return ledger


async def refused(database, tenant, *statements):
    """Run the statements as the app role in one committed tenant transaction; return the error."""

    async def run():
        async with database.tenant_transaction(tenant) as session:
            for statement in statements:
                await session.execute(text(statement), {"t": tenant})

    with pytest.raises(DBAPIError) as caught:
        await run()
    return caught.value.orig


async def test_updating_or_deleting_journal_rows_is_refused(books, ledger_database):
    for statement in (
        "UPDATE postings SET amount_minor = 1 WHERE tenant_id = :t",
        "DELETE FROM postings WHERE tenant_id = :t",
        "UPDATE journal_entries SET description = 'x' WHERE tenant_id = :t",
        "DELETE FROM journal_entries WHERE tenant_id = :t",
        "UPDATE entry_chain SET hash = hash WHERE tenant_id = :t",
        "DELETE FROM entry_chain WHERE tenant_id = :t",
    ):
        error = await refused(ledger_database, books.tenant, statement)
        assert isinstance(error, pg.RestrictViolation), statement


async def test_an_unbalanced_entry_is_refused_at_commit(books, ledger_database):
    error = await refused(
        ledger_database,
        books.tenant,
        "INSERT INTO journal_entries (tenant_id, entry_id) VALUES (:t, 'bad')",
        "INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,"
        " amount_minor) VALUES (:t, 'bad', 0, 'cash', 'USD', 10),"
        " (:t, 'bad', 1, 'sales', 'USD', -9)",
    )
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_balanced"


async def test_an_entry_with_a_single_posting_is_refused_at_commit(books, ledger_database):
    error = await refused(
        ledger_database,
        books.tenant,
        "INSERT INTO journal_entries (tenant_id, entry_id) VALUES (:t, 'lonely')",
    )
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_at_least_two"


async def test_a_posting_in_another_currency_than_its_account_is_refused(books, ledger_database):
    error = await refused(
        ledger_database,
        books.tenant,
        "INSERT INTO journal_entries (tenant_id, entry_id) VALUES (:t, 'fx')",
        "INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,"
        " amount_minor) VALUES (:t, 'fx', 0, 'cash', 'EUR', 10),"
        " (:t, 'fx', 1, 'sales', 'EUR', -10)",
    )
    assert isinstance(error, pg.ForeignKeyViolation)


async def test_account_limits_and_history_are_guarded_by_the_database(books, ledger_database):
    error = await refused(
        ledger_database,
        books.tenant,
        "UPDATE accounts SET debits_posted = 1 WHERE tenant_id = :t AND account_id = 'wallet'",
    )
    assert isinstance(error, pg.CheckViolation)
    error = await refused(
        ledger_database,
        books.tenant,
        "UPDATE accounts SET currency_code = 'EUR' WHERE tenant_id = :t AND account_id = 'wallet'",
    )
    assert isinstance(error, pg.RestrictViolation | pg.ForeignKeyViolation)
    error = await refused(
        ledger_database, books.tenant, "DELETE FROM accounts WHERE tenant_id = :t"
    )
    assert isinstance(error, pg.RestrictViolation)


async def test_a_finalized_hold_cannot_change_again(books, ledger_database):
    await books.post(("sales", 50), ("wallet", -50))
    hold = (
        await books.call(
            "CreateHold",
            pb.CreateHoldRequest(
                parent=books.parent,
                hold=res.Hold(
                    debit_account=books.account("wallet"),
                    credit_account=books.account("sales"),
                    amount=res.Hold().amount.__class__(currency_code="USD", amount_minor=5),
                ),
                request_id=books.new_request_id(),
            ),
        )
    ).hold
    await books.call(
        "VoidHold", pb.VoidHoldRequest(name=hold.name, request_id=books.new_request_id())
    )
    error = await refused(
        ledger_database,
        books.tenant,
        "UPDATE holds SET state = 'pending', finalize_time = NULL WHERE tenant_id = :t",
    )
    assert isinstance(error, pg.RestrictViolation)


async def test_another_tenant_sees_none_of_the_rows(books, ledger_database):
    other = f"o{uuid.uuid4().hex[:10]}"
    async with ledger_database.tenant_transaction(other) as session:
        for table in (
            "accounts",
            "journal_entries",
            "postings",
            "entry_chain",
            "holds",
            "chain_heads",
            "idempotency_keys",
        ):
            count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            assert count == 0, table
    error = await refused(
        ledger_database,
        other,
        f"INSERT INTO journal_entries VALUES ('{books.tenant}', 'smuggled')",  # noqa: S608
    )
    assert isinstance(error, pg.InsufficientPrivilege)


async def test_the_chain_head_never_moves_back(books, ledger_database):
    error = await refused(
        ledger_database, books.tenant, "UPDATE chain_heads SET sequence = 0 WHERE tenant_id = :t"
    )
    assert isinstance(error, pg.RestrictViolation)
