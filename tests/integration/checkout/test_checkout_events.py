"""Checkout's events reach Pub/Sub (the real API server, pstest build) through the outbox
relay: OrderPlaced then CheckoutCompleted for a confirmed order, ordered by the order name,
with CloudEvents attributes and everything invoicing needs in CheckoutCompleted."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from commerce.checkout.v1 import events_pb2 as ev
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.emulator import EMULATOR_HOST_ENV, PubSubEmulator
from services.chassis.events.relay import Relay
from services.chassis.events.topology import Subscription, Topic, Topology

PROJECT = "commerce-test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[PubSubEmulator]:
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


@pytest.fixture
async def subscription(emulator) -> AsyncIterator[tuple[str, str, Any]]:
    """A fresh `checkout-events`-like topic with one ordered subscription."""
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    stem = f"t{secrets.token_hex(4)}"
    sub = Subscription(name=f"{stem}-invoicing", topic=f"{stem}-checkout-events")
    apply_topology(
        Topology(topics=(Topic(sub.topic),), subscriptions=(sub,)), PROJECT, publisher, subscriber
    )
    yield (
        pubsub.topic_path(PROJECT, sub.topic),
        pubsub.subscription_path(PROJECT, sub.name),
        (subscriber),
    )
    publisher.stop()
    subscriber.close()


async def pull_for(subscriber: Any, path: str, subject: str, count: int) -> list[Any]:
    found: list[Any] = []
    for _ in range(50):
        reply = await asyncio.to_thread(
            subscriber.pull, request={"subscription": path, "max_messages": 100}, timeout=5
        )
        if reply.received_messages:
            await asyncio.to_thread(
                subscriber.acknowledge,
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in reply.received_messages],
                },
            )
        found += [
            m.message
            for m in reply.received_messages
            if m.message.attributes.get("ce-subject") == subject
        ]
        if len(found) >= count:
            return found
    return found


async def test_a_confirmed_order_publishes_placed_then_completed(shopper, mesh, subscription):
    topic, path, subscriber = subscription
    quoted = await shopper.quoted(shopper.line("mug", 2, 1999))
    order = (await shopper.call("PlaceOrder", shopper.place_request(quoted))).order
    relay = Relay(mesh.checkout_database, topic_path=topic, listen=False)
    try:
        assert await relay.drain() >= 2
    finally:
        relay.close()
    messages = await pull_for(subscriber, path, order.name, 2)
    assert [m.attributes["ce-type"] for m in messages] == [
        "commerce.checkout.v1.OrderPlaced",
        "commerce.checkout.v1.CheckoutCompleted",
    ]
    assert {m.ordering_key for m in messages} == {order.name}
    assert messages[1].attributes["ce-source"] == "//commerce-mesh/checkout"
    completed = ev.CheckoutCompleted.FromString(messages[1].data)
    assert (completed.order, completed.checkout, completed.payment) == (
        order.name,
        quoted.name,
        order.payment,
    )
    assert completed.total == completed.captured_amount == quoted.quote.total
    assert list(completed.lines) == list(quoted.quote.lines)
    assert list(completed.tax_breakdown) == list(quoted.quote.tax_breakdown)
    assert completed.capture_reference == order.capture_reference
    assert completed.complete_time == order.confirm_time
