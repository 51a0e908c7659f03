"""Poison messages: dead-lettered after the configured attempts, listed and replayed by the CLI;
the rest of the subscription keeps flowing meanwhile."""

import asyncio
import io

import pytest

from services.chassis.events import cli

pytestmark = pytest.mark.integration

POISON = 13


def run_cli(*argv):
    out = io.StringIO()
    status = cli.main(["--project", "commerce-test", *argv], out=out)
    return status, out.getvalue()


async def test_a_poison_message_is_dead_lettered_after_5_attempts_then_listed_and_replayed(
    kit, consumers, running_relay, topology
):
    attempts = []
    fixed = asyncio.Event()

    async def handler(session, event, envelope):
        if event.value == POISON and not fixed.is_set():
            attempts.append(envelope.id)
            raise ValueError("cannot apply sequence 13")
        await kit.record_effect(session, event, envelope)

    await consumers(handler=handler)
    running_relay()
    [poison_id] = await kit.stage_sequence("tenants/acme/orders/bad", [POISON])
    healthy = await kit.stage_sequence("tenants/acme/orders/good", range(5))

    async def healthy_applied_and_poison_dead_lettered():
        status, listing = await asyncio.to_thread(
            run_cli, "dead-letters", "list", "--subscription", topology.subscription.name
        )
        return len(await kit.effects()) == 5 and poison_id in listing and (status, listing)

    status, listing = await kit.wait_until(healthy_applied_and_poison_dead_lettered, timeout_s=30)
    assert status == 0
    assert len(attempts) == topology.subscription.max_delivery_attempts == 5
    assert "1 dead letters" in listing
    assert "attempts=5" in listing
    assert "ValueError: cannot apply sequence 13" in listing

    fixed.set()
    status, output = await asyncio.to_thread(
        run_cli, "dead-letters", "replay", "--subscription", topology.subscription.name
    )
    assert status == 0
    assert output.startswith("1 dead letters replayed")

    async def poison_applied():
        return poison_id in {event_id for event_id, _, _, _ in await kit.effects()}

    await kit.wait_until(poison_applied, timeout_s=30)
    assert sorted(e for e, _, _, _ in await kit.effects()) == sorted([poison_id, *healthy])
    _, after = await asyncio.to_thread(
        run_cli, "dead-letters", "list", "--subscription", topology.subscription.name
    )
    assert after.startswith("0 dead letters")
