"""The backbone's metrics as Prometheus scrapes them: outbox backlog, age, lag and publishes
from a relay, and the depth of a consumer's dead-letter subscription."""

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.chassis import telemetry
from services.chassis.events import pubsub
from services.chassis.events.dead_letter import DeadLetterMonitor
from services.chassis.events.relay import Relay

pytestmark = pytest.mark.integration


@pytest.fixture
def exported():
    """A meter provider whose metrics are served on a real /metrics endpoint."""
    built = telemetry.build(
        "events-test", telemetry.TelemetrySettings(metrics_port=0, metrics_host="127.0.0.1")
    )
    yield built
    built.shutdown()


def scrape(port):
    """{(sample name, frozenset(labels)): value} from the endpoint's text exposition."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, sorted(n for n, _ in samples))
    return matches[0]


async def test_relay_backlog_age_lag_and_publishes_are_scraped(kit, relay_db, topology, exported):
    relay = Relay(relay_db, topic_path=topology.topic_path, meter_provider=exported.meter_provider)
    topic = {"messaging_destination_name": topology.topic_path}
    try:
        await kit.stage_sequence("tenants/acme/orders/m1", range(3))
        await asyncio.sleep(0.05)
        await relay.refresh_backlog()
        before = await asyncio.to_thread(scrape, exported.metrics_port)
        assert value(before, "outbox_backlog", **topic) == 3
        assert value(before, "outbox_oldest_age_seconds", **topic) >= 0.05

        assert await relay.drain() == 3
        await relay.refresh_backlog()
        after = await asyncio.to_thread(scrape, exported.metrics_port)
    finally:
        relay.close()
    assert value(after, "outbox_backlog", **topic) == 0
    assert value(after, "outbox_oldest_age_seconds", **topic) == 0
    assert value(after, "outbox_published_total", **topic) == 3
    assert value(after, "outbox_lag_seconds_count", **topic) == 3
    assert value(after, "outbox_lag_seconds_sum", **topic) > 0


async def test_dead_letter_depth_is_scraped_per_subscription_and_letters_stay(
    kit, clients, topology, exported
):
    publisher, subscriber = clients
    dead_letter_topic = pubsub.topic_path(kit.PROJECT, topology.subscription.dead_letter_topic)
    for index in range(2):
        publisher.publish(dead_letter_topic, b"poison", index=str(index)).result(timeout=10)
    monitor = DeadLetterMonitor(
        subscriber,
        kit.PROJECT,
        [topology.subscription.name],
        meter_provider=exported.meter_provider,
    )

    assert await asyncio.to_thread(monitor.refresh) == {topology.subscription.name: 2}
    samples = await asyncio.to_thread(scrape, exported.metrics_port)
    subscription = {"messaging_destination_subscription_name": topology.subscription.name}
    assert value(samples, "events_dead_letter_depth", **subscription) == 2
    # Counting hands the letters back: they are still there to list and replay.
    assert await asyncio.to_thread(monitor.refresh) == {topology.subscription.name: 2}
