"""Batched consumption: messages that arrive together are applied in one transaction per
tenant; a handler failing inside a batch retries only its own message, and every other
message of the batch is applied exactly once."""

import asyncio
import dataclasses

import pytest
import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import Int64Value

from services.chassis.events import dead_letter
from services.chassis.events.consumer import Consumer

pytestmark = pytest.mark.integration

FAILING = 7


@pytest.fixture
async def one_worker(consumer_db, topology):
    """`one_worker(handler)` starts a consumer with a single worker task: while it is busy,
    messages queue up and are then taken as one batch."""
    started = []

    async def start(handler):
        settings = dataclasses.replace(topology.consumer_settings(streams=4), workers=1)
        consumer = Consumer(consumer_db, settings)
        consumer.handle(Int64Value, handler)
        await consumer.start()
        started.append(consumer)

    yield start
    for consumer in started:
        await consumer.stop()


async def test_a_failure_in_a_batch_retries_only_its_own_message(
    kit, one_worker, running_relay, tap
):
    # ce-id -> [transaction id of each application, committed or not]
    transactions: dict[str, list[int]] = {}
    failed: list[str] = []

    async def handler(session, event, envelope):
        txid = (await session.execute(sa.text("SELECT txid_current()"))).scalar_one()
        transactions.setdefault(envelope.id, []).append(txid)
        if len(transactions) == 1:
            await asyncio.sleep(0.5)  # the others pile up meanwhile
        if event.value == FAILING and not failed:
            failed.append(envelope.id)
            raise RuntimeError("transient failure")
        await kit.record_effect(session, event, envelope)

    # Publish everything first, so the consumer receives many messages at once.
    running_relay()
    staged = []
    for tenant in ("acme", "globex"):
        for index in range(20):
            staged += await kit.stage_sequence(
                f"tenants/{tenant}/orders/b{index}", [index], tenant=tenant
            )

    async def all_published():
        return len({event_id for event_id, _, _ in tap.snapshot()}) == len(staged)

    await kit.wait_until(all_published, timeout_s=30)
    await one_worker(handler)

    async def all_applied():
        return len(await kit.effects("acme")) + len(await kit.effects("globex")) == len(staged)

    await kit.wait_until(all_applied, timeout_s=30)
    applied = [row[0] for row in await kit.effects("acme") + await kit.effects("globex")]
    assert sorted(applied) == sorted(staged)  # each exactly once
    assert await kit.query("SELECT count(*) FROM inbox") == [(len(staged),)]
    # Batching happened: some transaction applied several messages (of one tenant).
    first_transactions = [ids[0] for ids in transactions.values()]
    assert len(set(first_transactions)) < len(first_transactions)
    # The failed message was retried in a transaction of its own.
    [poisoned] = failed
    retry = transactions[poisoned][-1]
    assert [event for event, ids in transactions.items() if retry in ids] == [poisoned]


async def test_an_event_without_a_tenant_subject_is_dead_lettered_at_once_and_others_flow(
    kit, clients, consumers, running_relay, topology
):
    publisher, subscriber = clients
    attempts = []

    async def handler(session, event, envelope):
        attempts.append(envelope.id)
        await kit.record_effect(session, event, envelope)

    await consumers(handler=handler)
    running_relay()
    [good] = await kit.stage_sequence("tenants/acme/orders/g1", [1])
    # A foreign producer's event whose subject names no tenant: it can never be applied.
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "bad-subject-1",
        "ce-type": "google.protobuf.Int64Value",
        "ce-source": "//elsewhere",
        "ce-subject": "orders/o1",
        "ce-time": "2026-11-21T00:00:00Z",
    }
    publisher.publish(topology.topic_path, b"", ordering_key="orders/o1", **attributes).result(
        timeout=10
    )

    async def settled():
        # Listing hands the letters straight back, so every poll sees them all.
        letters = await asyncio.to_thread(
            dead_letter.list_dead_letters, subscriber, topology.dead_letter_subscription_path, 10
        )
        return len(await kit.effects()) == 1 and letters

    [letter] = await kit.wait_until(settled, timeout_s=30)
    assert (letter.event_id, letter.subject, letter.attempts) == ("bad-subject-1", "orders/o1", "1")
    assert "InvalidSubjectError" in letter.error
    assert attempts == [good]
