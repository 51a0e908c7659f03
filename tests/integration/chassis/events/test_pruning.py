"""Pruning against real PostgreSQL: only published outbox rows past the retention go, never an
unpublished one; inbox rows go after their retention, which may not be shorter than the
longest redelivery window."""

import asyncio
import io
from datetime import timedelta

import psycopg
import pytest

from services.chassis.db.database import Database
from services.chassis.db.settings import libpq_conninfo
from services.chassis.events import cli, retention
from services.chassis.events.relay import Relay

pytestmark = pytest.mark.integration


def run_cli(db, *argv):
    out = io.StringIO()
    url = db.app_url.render_as_string(hide_password=False)
    status = cli.main([argv[0], argv[1], "--database-url", url, *argv[2:]], out=out)
    return status, out.getvalue()


async def execute(kit, statement, params=(), *, tenant=None):
    """Run one statement as the database owner (as `tenant` if given) and commit it."""
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(kit.db.owner_url)) as conn:
        if tenant is not None:
            await conn.execute("SELECT set_config('app.tenant_id', %s, false)", [tenant])
        await conn.execute(statement, params)


async def age_outbox(kit, position, *, published_days_ago=None, created_days_ago=0):
    """Back-date a row (as the owner): when it was staged and, if given, published."""
    await execute(
        kit,
        "UPDATE outbox SET created_at = now() - make_interval(days => %s),"
        " published_at = CASE WHEN %s::int IS NULL THEN NULL"
        " ELSE now() - make_interval(days => %s::int) END WHERE position = %s",
        [created_days_ago, published_days_ago, published_days_ago, position],
    )


async def positions(kit):
    return [p for (p,) in await kit.query("SELECT position FROM outbox ORDER BY position")]


async def test_outbox_prune_deletes_only_rows_published_before_the_retention(kit, events_db):
    await kit.stage_sequence("tenants/acme/orders/p1", range(6))
    await age_outbox(kit, 1, published_days_ago=9, created_days_ago=9)
    await age_outbox(kit, 2, published_days_ago=8, created_days_ago=9)
    await age_outbox(kit, 3, published_days_ago=2, created_days_ago=9)
    # Staged long ago but never published (e.g. queued again by `republish`): must stay.
    await age_outbox(kit, 4, created_days_ago=30)

    status, output = await asyncio.to_thread(
        run_cli, events_db, "outbox", "prune", "--older-than", "7d"
    )

    assert (status, output) == (0, "2 published outbox rows older than 7 days, 0:00:00 deleted\n")
    assert await positions(kit) == [3, 4, 5, 6]


async def test_the_relay_prunes_its_outbox_when_given_a_retention(kit, relay_db, topology):
    await kit.stage_sequence("tenants/acme/orders/p2", range(3))
    relay = Relay(relay_db, topic_path=topology.topic_path, outbox_retention=timedelta(hours=1))
    try:
        assert await relay.drain() == 3
        await age_outbox(kit, 1, published_days_ago=1, created_days_ago=1)
        assert await relay.prune() == 1
    finally:
        relay.close()
    assert await positions(kit) == [2, 3]
    without_retention = Relay(relay_db, topic_path=topology.topic_path)
    try:
        await age_outbox(kit, 2, published_days_ago=400, created_days_ago=400)
        assert await without_retention.prune() == 0
    finally:
        without_retention.close()
    assert await positions(kit) == [2, 3]


async def test_outbox_prune_works_in_batches_until_done(kit, events_db):
    await kit.stage_sequence("tenants/acme/orders/p3", range(5), per_transaction=5)
    await execute(
        kit, "UPDATE outbox SET published_at = now() - interval '8 days' WHERE position <= 4"
    )
    database = Database.connect(events_db.app_url, pool_size=1, max_overflow=0)
    try:
        deleted = await retention.prune_outbox_fully(database, timedelta(days=7), batch=2)
    finally:
        await database.dispose()
    assert deleted == 4
    assert await positions(kit) == [5]


async def add_inbox_row(kit, event_id, days_ago):
    await execute(
        kit,
        "INSERT INTO inbox (consumer, event_id, tenant_id, subject, type, processed_at)"
        " VALUES ('c', %s, 'acme', 'tenants/acme/orders/i', 't',"
        " now() - make_interval(days => %s))",
        [event_id, days_ago],
        tenant="acme",
    )


async def test_inbox_prune_forgets_only_events_applied_before_the_retention(kit, events_db):
    for event_id, days_ago in (("old-1", 40), ("old-2", 31), ("recent", 29), ("today", 0)):
        await add_inbox_row(kit, event_id, days_ago)

    status, output = await asyncio.to_thread(run_cli, events_db, "inbox", "prune")

    assert status == 0
    assert output.startswith("2 inbox rows older than 30 days")
    remaining = await kit.query("SELECT event_id FROM inbox ORDER BY event_id")
    assert remaining == [("recent",), ("today",)]


async def test_inbox_retention_shorter_than_the_redelivery_window_is_refused(
    kit, events_db, capsys
):
    await add_inbox_row(kit, "old", 20)

    status, output = await asyncio.to_thread(
        run_cli, events_db, "inbox", "prune", "--older-than", "14d"
    )

    assert (status, output) == (2, "")
    assert "shorter than 15 days" in capsys.readouterr().err
    assert await kit.query("SELECT event_id FROM inbox") == [("old",)]
