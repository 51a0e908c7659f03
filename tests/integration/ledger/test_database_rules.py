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


async def committed(database, tenant, *statements):
    """Run the statements as the app role in one tenant transaction that must commit."""
    async with database.tenant_transaction(tenant) as session:
        for statement in statements:
            await session.execute(text(statement), {"t": tenant})


# One statement writing several entries and their postings (as the service's batches do):
# the `legs` are (entry, index, account, amount) in USD.
def one_statement(*legs: tuple[str, int, str, int]) -> str:
    entries = ", ".join(f"(:t, '{e}')" for e in sorted({e for e, _, _, _ in legs}))
    values = ", ".join(f"(:t, '{e}', {i}, '{a}', 'USD', {m})" for e, i, a, m in legs)
    columns = "tenant_id, entry_id, posting_index, account_id, currency_code, amount_minor"
    return (
        f"WITH e AS (INSERT INTO journal_entries (tenant_id, entry_id) VALUES {entries}"  # noqa: S608
        f" RETURNING entry_id) INSERT INTO postings ({columns})"
        f" SELECT * FROM (VALUES {values}) AS p WHERE EXISTS (SELECT 1 FROM e)"
    )


async def test_one_statement_with_an_unbalanced_entry_among_several_is_refused(
    books, ledger_database
):
    error = await refused(
        ledger_database,
        books.tenant,
        one_statement(
            ("m1", 0, "cash", 5), ("m1", 1, "sales", -5),
            ("m2", 0, "cash", 7), ("m2", 1, "sales", -6),
            ("m3", 0, "cash", 1), ("m3", 1, "sales", -1),
        ),
    )  # fmt: skip
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_balanced"
    assert "journal entry m2 does not balance in USD: off by 1" in str(error)
    error = await refused(
        ledger_database,
        books.tenant,
        one_statement(("s1", 0, "cash", 5), ("s1", 1, "sales", -5), ("s2", 0, "cash", 4)),
    )
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_balanced"  # one posting of 4: off by 4


async def test_one_statement_with_an_entry_of_a_single_posting_among_several_is_refused(
    books, ledger_database
):
    # e3 has no postings at all; e4's legs balance.
    error = await refused(
        ledger_database,
        books.tenant,
        "WITH e AS (INSERT INTO journal_entries (tenant_id, entry_id) VALUES (:t, 'x3'),"
        " (:t, 'x4') RETURNING entry_id) INSERT INTO postings (tenant_id, entry_id,"
        " posting_index, account_id, currency_code, amount_minor)"
        " SELECT :t, 'x4', i, a, 'USD', m FROM (VALUES (0, 'cash', 3), (1, 'sales', -3))"
        " AS v (i, a, m) WHERE EXISTS (SELECT 1 FROM e)",
    )
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_at_least_two"
    assert "journal entry x3 has 0 posting(s)" in str(error)


async def test_balanced_entries_commit_whether_written_in_one_statement_or_several(
    books, ledger_database
):
    await committed(
        ledger_database,
        books.tenant,
        one_statement(
            ("b1", 0, "cash", 5), ("b1", 1, "sales", -5),
            ("b2", 0, "cash", 2), ("b2", 1, "sales", -1), ("b2", 2, "sales", -1),
        ),
    )  # fmt: skip
    await committed(  # the check waits for the commit: postings may follow their entry
        ledger_database,
        books.tenant,
        "INSERT INTO journal_entries (tenant_id, entry_id) VALUES (:t, 'b3')",
        "INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,"
        " amount_minor) VALUES (:t, 'b3', 0, 'cash', 'USD', 8)",
        "INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,"
        " amount_minor) VALUES (:t, 'b3', 1, 'sales', 'USD', -8)",
    )
    # Every queued check deleted its queue row before its transaction committed.
    async with ledger_database.tenant_transaction(books.tenant) as session:
        pending = (await session.execute(text("SELECT count(*) FROM entry_checks"))).scalar_one()
    assert pending == 0


async def test_postings_added_to_a_committed_entry_are_checked_again(books, ledger_database):
    error = await refused(
        ledger_database,
        books.tenant,
        "INSERT INTO postings (tenant_id, entry_id, posting_index, account_id, currency_code,"
        " amount_minor) VALUES (:t, 'e1', 2, 'cash', 'USD', 1)",
    )
    assert isinstance(error, pg.CheckViolation)
    assert error.diag.constraint_name == "postings_balanced"


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
