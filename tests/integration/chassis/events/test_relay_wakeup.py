"""The relay wakes on PostgreSQL's NOTIFY from `stage()`'s commit, not on its poll timer."""

import asyncio
import time

import pytest

pytestmark = pytest.mark.integration


async def test_a_commit_wakes_a_listening_relay_long_before_its_next_poll(kit, running_relay, tap):
    running_relay(poll_interval_s=60, listen_poll_interval_s=60)
    await asyncio.sleep(1.0)  # connected, listening, and idle until the next minute

    for sequence in range(3):
        [event_id] = await kit.stage_sequence("tenants/acme/orders/w1", [sequence])
        committed = time.monotonic()

        async def published(event_id=event_id):
            return event_id in {received for received, _, _ in tap.snapshot()}

        await kit.wait_until(published, timeout_s=10, interval_s=0.01)
        assert time.monotonic() - committed < 10


async def test_commits_arriving_just_after_a_wake_up_share_one_round(kit, running_relay, tap):
    relay = running_relay(
        poll_interval_s=60, listen_poll_interval_s=60, min_round_interval_s=0, gather_s=1.0
    )
    # Connected, listening, past the round that follows LISTEN (and its gather), and idle
    # until the next minute.
    await asyncio.sleep(2.5)
    assert relay.rounds == 0

    staged = await kit.stage_sequence("tenants/acme/orders/g1", [0])  # wakes the relay
    await asyncio.sleep(0.3)  # without the gather window, the first round is over by now
    staged += await kit.stage_sequence("tenants/acme/orders/g2", [0])  # within its 1 s gather

    async def published():
        return set(staged) <= {received for received, _, _ in tap.snapshot()}

    await kit.wait_until(published, timeout_s=10, interval_s=0.01)
    assert relay.rounds == 1
