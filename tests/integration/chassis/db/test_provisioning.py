"""Provisioning: one database per service, an owner role, and an app role confined to DML."""

import secrets
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql
from pydantic import SecretStr

from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import (
    drop_service_database,
    provision_service_database,
)
from services.chassis.db.settings import libpq_conninfo

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parent / "migrations"


async def query(url, statement, params=()):
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(url), autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
async def migrated(service_database):
    await upgrade(service_database.owner_url, MIGRATIONS)
    return service_database


@pytest.fixture
async def fresh_service(postgres_admin_url):
    name = f"t_prov_{secrets.token_hex(4)}"
    yield name
    await drop_service_database(postgres_admin_url, name)


async def test_app_role_can_log_in_but_is_no_superuser_and_has_no_bypassrls(
    migrated, postgres_admin_url
):
    rows = await query(
        postgres_admin_url,
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication "
        "FROM pg_roles WHERE rolname = %s",
        [f"{migrated.name}_app"],
    )
    assert rows == [(True, False, False, False, False, False)]


async def test_owner_role_has_no_bypassrls_either(migrated, postgres_admin_url):
    rows = await query(
        postgres_admin_url,
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
        [f"{migrated.name}_owner"],
    )
    assert rows == [(False, False)]


async def test_tables_belong_to_the_owner_role_not_the_app_role(migrated):
    rows = await query(
        migrated.owner_url,
        "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    assert rows == [
        ("counters", f"{migrated.name}_owner"),
        ("notes", f"{migrated.name}_owner"),
    ]


async def test_app_role_holds_exactly_dml_on_tables_created_by_later_migrations(migrated):
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    rows = await query(
        migrated.owner_url,
        "SELECT p, has_table_privilege(%s, 'public.notes', p) FROM unnest(%s::text[]) AS p",
        [f"{migrated.name}_app", privileges],
    )
    assert dict(rows) == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": True,
        "DELETE": True,
        "TRUNCATE": False,
        "REFERENCES": False,
        "TRIGGER": False,
    }


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE notes DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON notes",
        "TRUNCATE notes",
        "DELETE FROM alembic.alembic_version",
    ],
)
async def test_app_role_cannot_change_schema_policies_or_migration_state(migrated, statement):
    with pytest.raises(pg_errors.InsufficientPrivilege):
        await query(migrated.app_url, statement)


async def test_roles_of_other_services_cannot_connect_to_the_database(
    migrated, postgres_admin_url, fresh_service
):
    other = await provision_service_database(postgres_admin_url, fresh_service)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        await query(other.app_url.set(database=migrated.name), "SELECT 1")


async def test_provisioning_twice_converges_and_the_latest_urls_work(
    postgres_admin_url, fresh_service
):
    await provision_service_database(postgres_admin_url, fresh_service)
    # Drift a role to something dangerous; provisioning again must repair it.
    await query(
        postgres_admin_url,
        sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(f"{fresh_service}_app")),
    )

    again = await provision_service_database(postgres_admin_url, fresh_service)

    assert await query(again.owner_url, "SELECT current_user") == [(f"{fresh_service}_owner",)]
    assert await query(again.app_url, "SELECT current_user") == [(f"{fresh_service}_app",)]
    counts = await query(
        postgres_admin_url,
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = %(name)s),"
        " (SELECT count(*) FROM pg_roles WHERE rolname LIKE %(name)s || '\\_%%'),"
        " (SELECT rolbypassrls FROM pg_roles WHERE rolname = %(name)s || '_app')",
        {"name": fresh_service},
    )
    assert counts == [(1, 2, False)]


async def test_configured_passwords_are_used_as_given(postgres_admin_url, fresh_service):
    provisioned = await provision_service_database(
        postgres_admin_url,
        fresh_service,
        owner_password=SecretStr("owner-from-secret-manager"),
        app_password=SecretStr("app-from-secret-manager"),
    )
    assert provisioned.owner_url.password == "owner-from-secret-manager"
    assert provisioned.app_url.password == "app-from-secret-manager"
    assert await query(provisioned.app_url, "SELECT current_user") == [(f"{fresh_service}_app",)]


async def test_passwords_are_stored_as_scram_verifiers_never_in_plain_text(
    postgres_admin_url, fresh_service
):
    provisioned = await provision_service_database(
        postgres_admin_url, fresh_service, app_password=SecretStr("plain-app-password")
    )
    rows = await query(
        postgres_admin_url,
        "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
        [provisioned.app_role],
    )
    [(stored,)] = rows
    assert stored.startswith("SCRAM-SHA-256$")
    assert "plain-app-password" not in stored


async def test_returned_urls_mask_their_generated_passwords_when_printed(
    postgres_admin_url, fresh_service
):
    provisioned = await provision_service_database(postgres_admin_url, fresh_service)
    for url in (provisioned.owner_url, provisioned.app_url):
        assert url.password
        assert url.password not in str(url)
        assert url.password not in repr(provisioned)


async def test_a_non_superuser_admin_with_createdb_and_createrole_can_provision(
    postgres_admin_url, fresh_service
):
    admin_role, admin_password = f"t_admin_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    await query(
        postgres_admin_url,
        sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
            sql.Identifier(admin_role), sql.Literal(admin_password)
        ),
    )
    limited_admin = postgres_admin_url.set(username=admin_role, password=admin_password)
    try:
        provisioned = await provision_service_database(limited_admin, fresh_service)
        await upgrade(provisioned.owner_url, MIGRATIONS)
        rows = await query(
            provisioned.app_url, "SELECT has_table_privilege('notes', 'INSERT'), current_user"
        )
        assert rows == [(True, f"{fresh_service}_app")]
    finally:
        await drop_service_database(limited_admin, fresh_service)
        await query(postgres_admin_url, sql.SQL("DROP ROLE {}").format(sql.Identifier(admin_role)))
