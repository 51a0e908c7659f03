"""A failed publish leaves rows unmarked, so the next round publishes them in order; the relay's
lag, backlog and failure metrics report it."""

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.chassis.events import pubsub
from services.chassis.events.relay import Relay

pytestmark = pytest.mark.integration


def metric_points(reader):
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    return points


async def test_a_failed_publish_is_retried_in_order_next_round(kit, relay_db, clients, topology):
    publisher, subscriber = clients
    reader = InMemoryMetricReader()
    missing_topic = f"{topology.topic}-later"
    relay = Relay(
        relay_db,
        topic_path=pubsub.topic_path(kit.PROJECT, missing_topic),
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    staged = await kit.stage_sequence("tenants/acme/orders/o1", range(3))

    assert await relay.publish_once() == 3  # claimed, but the topic does not exist yet
    assert await kit.query("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(3,)]
    await relay.refresh_backlog()
    points = metric_points(reader)
    assert points["outbox.publish.failures"][0].value == 3
    assert points["outbox.backlog"][0].value == 3

    publisher.create_topic(name=pubsub.topic_path(kit.PROJECT, missing_topic))
    tap_path = pubsub.subscription_path(kit.PROJECT, f"{missing_topic}-tap")
    subscriber.create_subscription(
        request={
            "name": tap_path,
            "topic": pubsub.topic_path(kit.PROJECT, missing_topic),
            "enable_message_ordering": True,
        }
    )
    assert await relay.publish_once() == 3
    await relay.refresh_backlog()

    assert await kit.query("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]
    received: list[str] = []
    while len(received) < 3:
        response = subscriber.pull(request={"subscription": tap_path, "max_messages": 10})
        received += [m.message.attributes["ce-id"] for m in response.received_messages]
        if response.received_messages:
            ack_ids = [m.ack_id for m in response.received_messages]
            subscriber.acknowledge(request={"subscription": tap_path, "ack_ids": ack_ids})
    assert received == staged
    points = metric_points(reader)
    assert points["outbox.published"][0].value == 3
    assert points["outbox.lag"][0].count == 3
    assert points["outbox.backlog"][0].value == 0
    await relay.aclose()
