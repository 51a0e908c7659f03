"""Redelivery: a consumer that fails after committing its effect but before acking applies the
effect exactly once; a republished event is dropped by the inbox too."""

import pytest

pytestmark = pytest.mark.integration


async def test_a_failure_after_the_effect_and_before_the_ack_applies_the_effect_once(
    kit, consumers, running_relay
):
    deliveries = []

    async def fail_first_ack(envelope):
        deliveries.append(envelope.id)
        if len(deliveries) == 1:
            raise ConnectionError("lost the stream before acking")

    await consumers(before_ack=fail_first_ack)
    running_relay()
    [event_id] = await kit.stage_sequence("tenants/acme/orders/o1", [1])

    async def delivered_twice():
        return len(deliveries) >= 2

    await kit.wait_until(delivered_twice, timeout_s=30)
    assert deliveries == [event_id, event_id]
    assert [row[0] for row in await kit.effects()] == [event_id]
    assert await kit.query("SELECT event_id FROM inbox") == [(event_id,)]
