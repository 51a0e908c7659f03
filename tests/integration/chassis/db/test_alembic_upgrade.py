"""Alembic through `migrations.upgrade`: runs as the owner, once, and idempotently."""

import asyncio
import io
import secrets
from pathlib import Path

import psycopg
import pytest
from alembic import command

from services.chassis.db.migrations import MigrationRoleError, alembic_config, upgrade
from services.chassis.db.provision import drop_service_database, provision_service_database
from services.chassis.db.settings import libpq_conninfo

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parent / "migrations"


async def query(url, statement, params=()):
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(url), autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall()


@pytest.fixture
async def fresh(postgres_admin_url):
    name = f"t_mig_{secrets.token_hex(4)}"
    yield await provision_service_database(postgres_admin_url, name)
    await drop_service_database(postgres_admin_url, name)


async def schema_state(url):
    return await query(
        url,
        "SELECT (SELECT array_agg(version_num) FROM alembic.alembic_version),"
        " (SELECT array_agg(tablename ORDER BY tablename) FROM pg_tables"
        "  WHERE schemaname = 'public'),"
        " (SELECT array_agg(tablename::text || ':' || policyname ORDER BY tablename)"
        "  FROM pg_policies WHERE schemaname = 'public')",
    )


async def test_upgrade_creates_the_tables_with_policies_and_records_head(fresh):
    await upgrade(fresh.owner_url, MIGRATIONS)

    assert await schema_state(fresh.owner_url) == [
        (
            ["0002"],
            ["counters", "notes"],
            ["counters:tenant_isolation", "notes:tenant_isolation"],
        )
    ]
    forced = await query(
        fresh.owner_url,
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE relname IN ('notes', 'counters') ORDER BY 1",
    )
    assert forced == [("counters", True, True), ("notes", True, True)]


async def test_upgrading_an_up_to_date_database_changes_nothing(fresh):
    await upgrade(fresh.owner_url, MIGRATIONS)
    before = await schema_state(fresh.owner_url)

    await upgrade(fresh.owner_url, MIGRATIONS)

    assert await schema_state(fresh.owner_url) == before


async def test_upgrade_to_an_intermediate_revision_then_head(fresh):
    await upgrade(fresh.owner_url, MIGRATIONS, revision="0001")
    assert (await schema_state(fresh.owner_url))[0][:2] == (["0001"], ["notes"])

    await upgrade(fresh.owner_url, MIGRATIONS)
    assert (await schema_state(fresh.owner_url))[0][:2] == (["0002"], ["counters", "notes"])


async def test_concurrent_upgrades_apply_each_migration_once(fresh):
    await asyncio.gather(*(upgrade(fresh.owner_url, MIGRATIONS) for _ in range(3)))

    assert (await schema_state(fresh.owner_url))[0][:2] == (["0002"], ["counters", "notes"])


async def test_upgrade_as_the_app_role_is_refused_and_changes_nothing(fresh):
    with pytest.raises(MigrationRoleError, match="database owner"):
        await upgrade(fresh.app_url, MIGRATIONS)

    tables = await query(
        fresh.owner_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    )
    assert tables == [(0,)]


async def test_upgrade_as_a_superuser_is_refused_so_tables_never_miss_the_app_grants(
    fresh, postgres_admin_url
):
    with pytest.raises(MigrationRoleError, match="database owner"):
        await upgrade(postgres_admin_url.set(database=fresh.name), MIGRATIONS)


def cli_config(owner_url, output=None):
    """What `alembic -c alembic.ini` would build: only a URL, no shared connection."""
    config = alembic_config(MIGRATIONS)
    if output is not None:
        config.output_buffer = output
    rendered = owner_url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


async def test_env_helper_connects_through_the_async_engine_when_run_like_the_cli(fresh):
    # The CLI runs env.py with no event loop; a worker thread gives it one of its own.
    await asyncio.to_thread(command.upgrade, cli_config(fresh.owner_url), "head")

    assert (await schema_state(fresh.owner_url))[0][:2] == (["0002"], ["counters", "notes"])


async def test_env_helper_refuses_the_app_role_when_run_like_the_cli(fresh):
    with pytest.raises(MigrationRoleError):
        await asyncio.to_thread(command.upgrade, cli_config(fresh.app_url), "head")


def test_offline_mode_renders_the_tenant_policies_as_sql(fresh):
    output = io.StringIO()

    command.upgrade(cli_config(fresh.owner_url, output), "head", sql=True)

    script = output.getvalue()
    assert 'ALTER TABLE "notes" FORCE ROW LEVEL SECURITY' in script
    assert 'CREATE POLICY tenant_isolation ON "counters"' in script
    assert "CREATE TABLE alembic.alembic_version" in script
