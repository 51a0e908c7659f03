"""The outbox reaches Pub/Sub: the chassis relay publishes payments' events (real Pub/Sub API
server, pstest) in order per payment, keyed by the payment's name, as CloudEvents."""

import asyncio
import os
import secrets

import pytest

from commerce.payments.v1 import events_pb2 as ev
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.emulator import EMULATOR_HOST_ENV, PubSubEmulator
from services.chassis.events.relay import Relay
from services.chassis.events.topology import RetryPolicy, Subscription, Topic, Topology

pytestmark = pytest.mark.integration
PROJECT = "commerce-payments-test"


@pytest.fixture(scope="module")
def emulator():
    previous = os.environ.get(EMULATOR_HOST_ENV)
    with PubSubEmulator() as running:
        os.environ[EMULATOR_HOST_ENV] = running.host
        try:
            yield running
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_HOST_ENV, None)
            else:
                os.environ[EMULATOR_HOST_ENV] = previous


async def test_the_relay_publishes_each_payment_s_events_in_order(payments, emulator):
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    stem = f"p{secrets.token_hex(4)}"
    subscription = Subscription(
        name=f"{stem}-sub",
        topic=f"{stem}-events",
        ack_deadline_s=10,
        max_delivery_attempts=5,
        retry=RetryPolicy(minimum_backoff_s=0.02, maximum_backoff_s=0.1),
    )
    apply_topology(
        Topology(topics=(Topic(f"{stem}-events"),), subscriptions=(subscription,)),
        PROJECT,
        publisher,
        subscriber,
    )
    await payments.route("alpha")
    payment = await payments.authorize(2_500)
    await payments.capture(payment.name, 1_000)
    await payments.capture(payment.name)
    relay = Relay(payments.database, topic_path=pubsub.topic_path(PROJECT, f"{stem}-events"))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    received = []
    try:
        for _ in range(100):
            reply = await asyncio.to_thread(
                subscriber.pull,
                request={
                    "subscription": pubsub.subscription_path(PROJECT, f"{stem}-sub"),
                    "max_messages": 50,
                },
                timeout=5,
            )
            if reply.received_messages:  # ordered delivery: the next one comes after the ack
                await asyncio.to_thread(
                    subscriber.acknowledge,
                    request={
                        "subscription": pubsub.subscription_path(PROJECT, f"{stem}-sub"),
                        "ack_ids": [m.ack_id for m in reply.received_messages],
                    },
                )
            received += [m.message for m in reply.received_messages]
            mine = [m for m in received if m.attributes.get("ce-subject") == payment.name]
            if len(mine) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        relay.close()
        publisher.stop()
        subscriber.close()
    assert [m.attributes["ce-type"] for m in mine] == [
        "commerce.payments.v1.PaymentAuthorized",
        "commerce.payments.v1.PaymentCaptured",
        "commerce.payments.v1.PaymentCaptured",
    ]
    assert {m.ordering_key for m in mine} == {payment.name}
    assert {m.attributes["ce-source"] for m in mine} == {"//commerce-mesh/payments"}
    last = ev.PaymentCaptured.FromString(mine[-1].data)
    assert last.final_capture
    assert last.payment.amount_captured.amount_minor == 2_500
