"""`python -m services.invoicing consume` exports the depth of its consumers' dead-letter
subscriptions as `events_dead_letter_depth` on its /metrics (what the DeadLettersWaiting alert
reads), read from the Pub/Sub API server every `dead_letter_check_interval_seconds`, and
leaves the dead letters where they are."""

import asyncio
import os
import signal
import sys
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.chassis.db.migrations import upgrade
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.mesh import MESH_TOPOLOGY
from services.chassis.events.topology import DEAD_LETTER_SUFFIX
from services.invoicing.bootstrap import MIGRATIONS
from services.invoicing.consumer import CHECKOUT_SUBSCRIPTION, PAYMENTS_SUBSCRIPTION
from tests.integration.invoicing.test_invoicing_processes import SECRET, free_port, wait_serving

pytestmark = pytest.mark.integration
DEPTH = "events_dead_letter_depth"
LABEL = "messaging_destination_subscription_name"


def depths(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        sample.labels[LABEL]: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == DEPTH
    }


async def test_the_consumer_process_exports_its_dead_letter_depth(
    pubsub_emulator, service_database
):
    project = f"dlq-{uuid.uuid4().hex[:8]}"
    await upgrade(service_database.owner_url, MIGRATIONS)
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    apply_topology(MESH_TOPOLOGY, project, publisher, subscriber)
    letters = {CHECKOUT_SUBSCRIPTION: 3, PAYMENTS_SUBSCRIPTION: 1}
    for name, count in letters.items():
        topic = pubsub.topic_path(project, f"{name}{DEAD_LETTER_SUFFIX}")
        for index in range(count):
            await pubsub.wait_published(publisher.publish(topic, b"poison", index=str(index)))
    health, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PUBSUB_PROJECT_ID": project,
        "COMMERCE_INVOICING_DATABASE_URL": service_database.app_url.render_as_string(
            hide_password=False
        ),
        "COMMERCE_INVOICING_AUTH__KEY": SECRET,
        "COMMERCE_INVOICING_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_INVOICING_WORKER__HEALTH_PORT": str(health),
        "COMMERCE_INVOICING_TELEMETRY__METRICS_PORT": str(metrics_port),
        "COMMERCE_INVOICING_TELEMETRY__METRICS_HOST": "127.0.0.1",
        "COMMERCE_INVOICING_DEAD_LETTER_CHECK_INTERVAL_SECONDS": "0.2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.invoicing", "consume", env=env
    )
    try:
        await wait_serving(health, [process])
        seen: dict[str, float] = {}
        for _ in range(100):
            seen = await asyncio.to_thread(depths, metrics_port)
            if seen == letters:
                break
            await asyncio.sleep(0.1)
        assert seen == letters
        # Counting hands the letters back: a later reading still finds every one of them.
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(depths, metrics_port) == letters
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        publisher.stop()
        subscriber.close()
