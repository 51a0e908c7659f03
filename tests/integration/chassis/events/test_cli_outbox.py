"""Operator CLI on the outbox: the backlog per subject, and republishing a range of rows."""

import asyncio
import io

import pytest

from services.chassis.events import cli

pytestmark = pytest.mark.integration


def run_cli(db, *argv):
    out = io.StringIO()
    url = db.app_url.render_as_string(hide_password=False)
    status = cli.main([argv[0], argv[1], "--database-url", url, *argv[2:]], out=out)
    return status, out.getvalue()


async def test_backlog_counts_unpublished_rows_oldest_subject_first(kit, events_db):
    await kit.stage_sequence("tenants/acme/orders/first", range(3))
    await kit.stage_sequence("tenants/acme/orders/second", range(2))

    status, output = await asyncio.to_thread(run_cli, events_db, "outbox", "backlog")

    assert status == 0
    lines = output.splitlines()
    assert lines[0].startswith("unpublished: 5  oldest: ")
    assert "tenants/acme/orders/first  3 rows from position 1" in lines[1]
    assert "tenants/acme/orders/second  2 rows from position 4" in lines[2]


async def test_republishing_a_range_sends_those_events_again_and_consumers_drop_the_copies(
    kit, events_db, running_relay, consumers, tap
):
    await consumers()
    running_relay()
    staged = await kit.stage_sequence("tenants/acme/orders/o1", range(6))

    def published(count):
        async def check():
            return len(tap.snapshot()) >= count

        return check

    await kit.wait_until(published(6), timeout_s=30)
    status, output = await asyncio.to_thread(
        run_cli, events_db, "outbox", "republish", "--from", "2", "--to", "4"
    )
    assert (status, output) == (
        0,
        "3 rows queued for republishing (the relay publishes them next)\n",
    )

    await kit.wait_until(published(9), timeout_s=30)
    await asyncio.sleep(0.3)
    assert [event_id for event_id, _, _ in tap.snapshot()] == staged + staged[1:4]
    assert [row[0] for row in await kit.effects()] == staged


def test_republish_refuses_an_inverted_range(events_db, capsys):
    status, _ = run_cli(events_db, "outbox", "republish", "--from", "5", "--to", "4")

    assert status == 2
    assert "--from must not be after --to" in capsys.readouterr().err
