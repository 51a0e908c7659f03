"""Two relays at once: SKIP LOCKED keeps them apart, and a relay never takes a subject's later
rows while another relay holds its earlier ones (that would publish them out of order)."""

import pytest

from services.chassis.db.database import Database
from services.chassis.events import outbox_store

pytestmark = pytest.mark.integration


async def test_a_second_claim_skips_held_rows_and_the_later_rows_of_their_subjects(
    kit, events_db, relay_db
):
    await kit.stage_sequence("tenants/acme/orders/a", range(2))  # positions 1, 2
    await kit.stage_sequence("tenants/acme/orders/b", range(2))  # positions 3, 4
    other = Database.connect(events_db.app_url, pool_size=1, max_overflow=0)
    try:
        async with relay_db.transaction() as first:
            held = await outbox_store.claim(first, limit=1)  # a's first row only
            await kit.stage_sequence("tenants/acme/orders/a", [2])  # position 5, later
            async with other.transaction() as second:
                taken = await outbox_store.claim(second, limit=10)

            assert [r.position for r in held] == [1]
            # Rows 2 and 5 of `a` wait for row 1; all of `b` is free.
            assert [r.position for r in taken] == [3, 4]
    finally:
        await other.dispose()


async def test_a_claim_sees_rows_committed_late_by_a_slow_transaction(kit, events_db, relay_db):
    slow = Database.connect(events_db.app_url, pool_size=1, max_overflow=0)
    try:
        async with slow.tenant_transaction("acme") as session:
            [late] = await kit.stage_in(session, "tenants/acme/orders/slow", 1)  # position 1
            await kit.stage_sequence("tenants/acme/orders/fast", [2])  # position 2 commits first
            async with relay_db.transaction() as relay:
                early = await outbox_store.claim(relay, limit=10)
                await outbox_store.mark_published(relay, [r.position for r in early])
        # The slow transaction has committed now, after a higher position was published.
        async with relay_db.transaction() as relay:
            later = await outbox_store.claim(relay, limit=10)
    finally:
        await slow.dispose()

    assert [r.position for r in early] == [2]
    assert [(r.position, r.envelope.id) for r in later] == [(1, late)]
