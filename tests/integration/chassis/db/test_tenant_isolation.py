"""Row-level security through Database.tenant_transaction: a forgotten WHERE cannot leak."""

import uuid
from pathlib import Path

import pytest
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from services.chassis.db.database import Database, InvalidTenantIdError
from services.chassis.db.migrations import upgrade

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parent / "migrations"


@pytest.fixture(scope="module")
async def db(service_database):
    await upgrade(service_database.owner_url, MIGRATIONS)
    return service_database.database


@pytest.fixture
async def single_connection_db(service_database, db):
    """A pool of exactly one connection, so consecutive transactions share it."""
    database = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    yield database
    await database.dispose()


def new_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


async def add_note(session, tenant_id: str, body: str) -> None:
    await session.execute(
        text("INSERT INTO notes (tenant_id, body) VALUES (:tenant_id, :body)"),
        {"tenant_id": tenant_id, "body": body},
    )


async def all_notes(session) -> list[tuple[object, ...]]:
    return [tuple(row) for row in (await session.execute(text("SELECT * FROM notes"))).all()]


def refused_by_row_security(error: DBAPIError) -> bool:
    return isinstance(error.orig, pg_errors.InsufficientPrivilege) and "row-level security" in str(
        error.orig
    )


async def test_row_written_in_tenant_a_transaction_is_invisible_to_tenant_b_without_where(db):
    tenant_a, tenant_b = new_tenant(), new_tenant()
    async with db.tenant_transaction(tenant_a) as session:
        await add_note(session, tenant_a, "a's secret")

    async with db.tenant_transaction(tenant_b) as session:
        assert await all_notes(session) == []
        count = (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one()
        assert count == 0

    async with db.tenant_transaction(tenant_a) as session:
        assert [row[1:] for row in await all_notes(session)] == [(tenant_a, "a's secret")]


async def test_tenant_b_updates_and_deletes_reach_no_row_of_tenant_a(db):
    tenant_a, tenant_b = new_tenant(), new_tenant()
    async with db.tenant_transaction(tenant_a) as session:
        await add_note(session, tenant_a, "keep me")

    async with db.tenant_transaction(tenant_b) as session:
        updated = await session.execute(text("UPDATE notes SET body = 'defaced'"))
        deleted = await session.execute(text("DELETE FROM notes"))
        assert (updated.rowcount, deleted.rowcount) == (0, 0)

    async with db.tenant_transaction(tenant_a) as session:
        assert [row[2] for row in await all_notes(session)] == ["keep me"]


async def test_inserting_a_row_for_another_tenant_than_the_transactions_is_refused(db):
    tenant_a, tenant_b = new_tenant(), new_tenant()
    with pytest.raises(DBAPIError) as refused:
        async with db.tenant_transaction(tenant_a) as session:
            await add_note(session, tenant_b, "smuggled into b")
    assert refused_by_row_security(refused.value)

    async with db.tenant_transaction(tenant_b) as session:
        assert await all_notes(session) == []


async def test_moving_a_row_to_another_tenant_is_refused(db):
    tenant_a, tenant_b = new_tenant(), new_tenant()
    async with db.tenant_transaction(tenant_a) as session:
        await add_note(session, tenant_a, "mine")

    with pytest.raises(DBAPIError) as refused:
        async with db.tenant_transaction(tenant_a) as session:
            await session.execute(text("UPDATE notes SET tenant_id = :other"), {"other": tenant_b})
    assert refused_by_row_security(refused.value)


async def test_without_a_tenant_nothing_is_visible_and_inserts_are_refused(db):
    tenant = new_tenant()
    async with db.tenant_transaction(tenant) as session:
        await add_note(session, tenant, "hidden from system work")

    async with db.transaction() as session:
        assert await all_notes(session) == []

    with pytest.raises(DBAPIError) as refused:
        async with db.transaction() as session:
            await add_note(session, tenant, "no tenant set")
    assert refused_by_row_security(refused.value)


async def test_tenant_setting_does_not_outlive_its_transaction_on_a_pooled_connection(
    single_connection_db,
):
    tenant = new_tenant()
    async with single_connection_db.tenant_transaction(tenant) as session:
        await add_note(session, tenant, "first checkout")
        first_backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()

    async with single_connection_db.transaction() as session:
        backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        setting = await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
        assert backend == first_backend
        # PostgreSQL leaves '' (not NULL) behind once a local setting has been used.
        assert setting.scalar_one() == ""
        assert await all_notes(session) == []

    with pytest.raises(DBAPIError) as refused:
        async with single_connection_db.transaction() as session:
            await add_note(session, "", "matches the leftover empty setting")
    assert refused_by_row_security(refused.value)


async def test_rollback_on_exception_leaves_nothing_behind(db):
    class PaymentDeclinedError(Exception):
        pass

    tenant = new_tenant()

    async def write_then_fail():
        async with db.tenant_transaction(tenant) as session:
            await add_note(session, tenant, "written, then abandoned")
            raise PaymentDeclinedError

    with pytest.raises(PaymentDeclinedError):
        await write_then_fail()

    async with db.tenant_transaction(tenant) as session:
        assert await all_notes(session) == []


async def test_commit_on_normal_exit_makes_rows_durable_for_a_new_connection(service_database, db):
    tenant = new_tenant()
    async with db.tenant_transaction(tenant) as session:
        await add_note(session, tenant, "durable")

    other = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    try:
        async with other.tenant_transaction(tenant) as session:
            assert [row[2] for row in await all_notes(session)] == ["durable"]
    finally:
        await other.dispose()


async def test_sequence_backed_keys_work_for_the_app_role_in_later_migrations(db):
    tenant = new_tenant()
    async with db.tenant_transaction(tenant) as session:
        await session.execute(text("INSERT INTO counters (tenant_id) VALUES (:t)"), {"t": tenant})
        ids = (await session.execute(text("SELECT id FROM counters"))).scalars().all()
    assert len(ids) == 1


async def test_malformed_tenant_id_is_refused_before_any_sql_runs(db):
    with pytest.raises(InvalidTenantIdError):
        async with db.tenant_transaction("acme'; SET row_security = off; --"):
            pytest.fail("the block must not run")


async def test_statement_timeout_cancels_slow_statements(service_database, db):
    impatient = Database.connect(service_database.app_url, statement_timeout_ms=50)
    try:
        async with impatient.transaction() as session:
            shown = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
        assert shown == "50ms"
        with pytest.raises(OperationalError) as cancelled:
            async with impatient.transaction() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        assert isinstance(cancelled.value.orig, pg_errors.QueryCanceled)
    finally:
        await impatient.dispose()


async def test_a_pipelined_tenant_transaction_sees_and_writes_only_its_tenant(
    db, single_connection_db
):
    tenant_a, tenant_b = new_tenant(), new_tenant()
    async with db.tenant_transaction(tenant_a) as session:
        await add_note(session, tenant_a, "a's secret")
    async with single_connection_db.pipelined_tenant_transaction(tenant_b) as (conn, pipeline):
        cursor = await conn.execute("SELECT count(*) FROM notes")
        await pipeline.sync()
        assert await cursor.fetchone() == (0,)
        await conn.execute(
            "INSERT INTO notes (tenant_id, body) VALUES (%s, %s)", (tenant_b, "b's note")
        )
    # Committed, and the setting did not outlive the transaction on the pooled connection.
    async with single_connection_db.transaction() as session:
        setting = await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
        assert setting.scalar_one() in (None, "")
    async with db.tenant_transaction(tenant_b) as session:
        assert [row[1:] for row in await all_notes(session)] == [(tenant_b, "b's note")]


async def test_a_pipelined_transaction_rolls_back_on_error_and_refuses_bad_tenant_ids(db):
    tenant = new_tenant()

    async def insert_then_fail() -> None:
        async with db.pipelined_tenant_transaction(tenant) as (conn, _):
            await conn.execute(
                "INSERT INTO notes (tenant_id, body) VALUES (%s, %s)", (tenant, "gone")
            )
            raise RuntimeError("the block failed")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    async with db.tenant_transaction(tenant) as session:
        assert await all_notes(session) == []
    with pytest.raises(InvalidTenantIdError):
        async with db.pipelined_tenant_transaction("Robert'); DROP TABLE notes;--"):
            pass
