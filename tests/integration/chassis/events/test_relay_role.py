"""A service database whose event tables are confined to a relay role (ADR 0017): the relay
reads and marks every tenant's outbox rows and nothing else; the service's role sees only its
tenant's event rows; row-level security on business tables is untouched."""

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import Int64Value
from psycopg import errors as pg_errors

from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import drop_relay_role, provision_relay_role
from services.chassis.db.settings import libpq_conninfo
from services.chassis.events import cli, inbox, retention
from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox import stage
from services.chassis.events.relay import Relay

pytestmark = pytest.mark.integration

CONFINED = Path(__file__).parent / "confined_migrations"
SOURCE = "//commerce-mesh/tests"


@pytest.fixture(scope="module")
async def confined(service_database, postgres_admin_url):
    """(the service database, the relay role) with the confining migration applied."""
    relay = await provision_relay_role(postgres_admin_url, service_database.name)
    await upgrade(service_database.owner_url, CONFINED)
    yield service_database, relay
    await drop_relay_role(postgres_admin_url, service_database.name)


@pytest.fixture(autouse=True)
async def _empty(confined):
    db, _ = confined
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(db.owner_url), autocommit=True
    ) as conn:
        await conn.execute("TRUNCATE outbox, inbox, effects RESTART IDENTITY")


async def stage_for(database, tenant, count):
    async with database.tenant_transaction(tenant) as session:
        for value in range(count):
            await stage(
                session,
                Int64Value(value=value),
                subject=f"tenants/{tenant}/orders/o",
                source=SOURCE,
            )


async def as_relay(relay, statement, params=()):
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(relay.url), autocommit=True
    ) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else cursor.rowcount


async def test_the_relay_role_publishes_and_prunes_every_tenants_events(
    confined, topology, postgres_admin_url
):
    db, relay_role = confined
    await stage_for(db.database, "acme", 2)
    await stage_for(db.database, "globex", 1)
    relay_db = Database.connect(relay_role.url, pool_size=2, max_overflow=0)
    relay = Relay(relay_db, topic_path=topology.topic_path, outbox_retention=timedelta(hours=1))
    try:
        assert await relay.drain() == 3
        await as_relay(relay_role, "SELECT 1")  # it can log in
        published = await as_relay(
            relay_role, "SELECT tenant_id FROM outbox WHERE published_at IS NOT NULL ORDER BY 1"
        )
        assert published == [("acme",), ("acme",), ("globex",)]
        # Back-dated as the superuser: FORCE RLS binds even the owner to the tenant policies.
        superuser = libpq_conninfo(postgres_admin_url.set(database=db.name))
        async with await psycopg.AsyncConnection.connect(superuser) as conn:
            await conn.execute("UPDATE outbox SET published_at = now() - interval '2 hours'")
        assert await relay.prune() == 3
    finally:
        relay.close()
        await relay_db.dispose()

    out = io.StringIO()
    url = relay_role.url.render_as_string(hide_password=False)
    status = await asyncio.to_thread(cli.main, ["outbox", "backlog", "--database-url", url], out)
    assert (status, out.getvalue()) == (0, "unpublished: 0  oldest: 0.0s\n")


async def test_the_service_role_sees_and_changes_only_its_tenants_event_rows(confined):
    db, _ = confined
    await stage_for(db.database, "acme", 2)
    await stage_for(db.database, "globex", 3)
    async with db.database.tenant_transaction("acme") as session:
        seen = (await session.execute(sa.text("SELECT tenant_id FROM outbox"))).scalars().all()
        marked = await session.execute(sa.text("UPDATE outbox SET published_at = now()"))
        deleted = await session.execute(sa.text("DELETE FROM outbox"))
    assert seen == ["acme", "acme"]
    assert (marked.rowcount, deleted.rowcount) == (0, 0)
    async with db.database.transaction() as session:
        assert (await session.execute(sa.text("SELECT count(*) FROM outbox"))).scalar() == 0
    assert await retention.prune_outbox_fully(db.database, timedelta(seconds=1)) == 0

    # The consumer's inbox still works: first delivery claims, a copy finds it taken.
    envelope = Envelope(
        id="e-1",
        type="google.protobuf.Int64Value",
        source=SOURCE,
        subject="tenants/acme/orders/o",
        time=datetime.now(UTC),
        data=b"",
    )
    for expected in ({"e-1"}, set()):
        async with db.database.tenant_transaction("acme") as session:
            assert await inbox.record_many(session, "c", [envelope]) == expected
    async with db.database.tenant_transaction("globex") as session:
        assert (await session.execute(sa.text("SELECT count(*) FROM inbox"))).scalar() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM effects",
        "INSERT INTO effects (tenant_id, event_id) VALUES ('acme', 'x')",
        "UPDATE outbox SET data = ''",
        (
            "INSERT INTO outbox (event_id, tenant_id, subject, type, source, time, data)"
            " VALUES (gen_random_uuid(), 'acme', 'tenants/acme/o/1', 't', 's', now(), '')"
        ),
        (
            "INSERT INTO inbox (consumer, event_id, tenant_id, subject, type)"
            " VALUES ('c', 'e', 'acme', 's', 't')"
        ),
    ],
)
async def test_the_relay_role_can_touch_nothing_else(confined, statement):
    _, relay_role = confined
    with pytest.raises(pg_errors.InsufficientPrivilege):
        await as_relay(relay_role, statement)
