"""Crash between publish and mark: a relay process SIGKILLed right after Pub/Sub accepted its
batch, again and again. Nothing is lost and the consumer applies every event exactly once.

`COMMERCE_EVENTS_SOAK_CRASHES` raises the count (the soak target runs 100+)."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from services.chassis.events.relay import Relay

pytestmark = pytest.mark.integration

CRASHES = int(os.environ.get("COMMERCE_EVENTS_SOAK_CRASHES", "20"))
EVENTS_PER_ROUND = 5
SCRIPT = Path(__file__).with_name("crashing_relay.py")
REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
async def crashing_relay(events_db, topology, pubsub_emulator):
    env = dict(os.environ)
    env["RELAY_DATABASE_URL"] = events_db.app_url.render_as_string(hide_password=False)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        topology.topic_path,
        "500",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )

    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def crash_once():
        stdin.write(b"crash\n")
        await stdin.drain()
        line = await asyncio.wait_for(stdout.readline(), timeout=60)
        return int(line)

    yield crash_once
    stdin.close()
    await process.wait()


@pytest.fixture
def recovering(relay_db, topology):
    """An in-process relay that takes over after each crash."""
    relay = Relay(relay_db, topic_path=topology.topic_path)
    yield relay
    relay.close()


async def test_killing_the_relay_between_publish_and_mark_loses_nothing_and_applies_once(
    kit, crashing_relay, recovering, consumers, tap
):
    await consumers(streams=2)
    staged = []
    for round_ in range(CRASHES):
        subject = f"tenants/acme/orders/o{round_ % 4}"
        staged += await kit.stage_sequence(subject, range(EVENTS_PER_ROUND))

        assert await crashing_relay() == -signal.SIGKILL
        # Killed after Pub/Sub accepted the batch, before marking: still unpublished.
        unpublished = await kit.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished == [(EVENTS_PER_ROUND,)]
        # The next relay publishes the same rows again and marks them. PostgreSQL aborts the
        # killed relay's transaction when it notices the closed socket; until then its rows
        # are still locked and SKIP LOCKED passes over them, so keep draining until they come.
        drained = 0

        async def recovered():
            nonlocal drained
            drained += await recovering.drain()
            return drained >= EVENTS_PER_ROUND

        await kit.wait_until(recovered, timeout_s=10)
        assert drained == EVENTS_PER_ROUND

    async def all_applied():
        return len(await kit.effects()) >= len(staged)

    await kit.wait_until(all_applied, timeout_s=60 + CRASHES)
    await asyncio.sleep(0.5)  # late duplicates would be applied by now

    applied = [event_id for event_id, _, _, _ in await kit.effects()]
    assert sorted(applied) == sorted(staged)  # 0 lost, 0 duplicate effects

    async def all_tapped():  # the tap's own subscription may trail the consumers
        return len(tap.snapshot()) >= 2 * len(staged)

    await kit.wait_until(all_tapped, timeout_s=60 + CRASHES)
    published = [event_id for event_id, _, _ in tap.snapshot()]
    assert sorted(published) == sorted(staged * 2)  # each crashed batch really went out
