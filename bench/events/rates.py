"""Publish rates: the relay draining a full outbox vs. google-cloud-pubsub publishing directly."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.wrappers_pb2 import Int64Value

from bench.events.environment import BenchEnvironment
from bench.events.processes import SOURCE, subject
from services.chassis.events import pubsub
from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox import stage
from services.chassis.events.relay import Relay

_STAGE_BATCH = 100


async def raw_publish_rate(
    env: BenchEnvironment, topic: str, events: int, aggregates: int
) -> float:
    """Messages/s of a bare ordered PublisherClient sending the relay's exact messages."""
    publisher = pubsub.ordered_publisher()
    path = pubsub.topic_path(env.project, topic)
    messages = [_message(index, aggregates) for index in range(events)]
    try:
        await _warm_up(publisher, path)
        started = time.perf_counter()
        futures = [
            publisher.publish(path, data, ordering_key=key, **attributes)
            for key, data, attributes in messages
        ]
        await asyncio.gather(*(pubsub.wait_published(future) for future in futures))
        return events / (time.perf_counter() - started)
    finally:
        publisher.stop()


async def relay_publish_rate(
    env: BenchEnvironment, topic: str, events: int, aggregates: int, batch_size: int
) -> float:
    """Events/s of one relay draining `events` staged rows: claim, publish, mark, commit."""
    database = env.connect(pool_size=4)
    path = pubsub.topic_path(env.project, topic)
    publisher = pubsub.batch_publisher()
    relay = Relay(database, topic_path=path, publisher=publisher, batch_size=batch_size)
    try:
        await _fill_outbox(database, events, aggregates)
        warm_up = pubsub.message(b"warm-up", "warm-up", {})
        await pubsub.publish_request(publisher, path, [warm_up], deadline_s=30.0)
        started = time.perf_counter()
        published = await relay.drain()
        elapsed = time.perf_counter() - started
    finally:
        await publisher.transport.close()
        await database.dispose()
    if published != events:
        raise RuntimeError(f"relay published {published} of {events} rows")
    return events / elapsed


async def _warm_up(publisher: Any, path: str) -> None:
    """Connect the client's channel before timing, for both sides alike."""
    await pubsub.wait_published(publisher.publish(path, b"warm-up", ordering_key="warm-up"))


async def _fill_outbox(database: Any, events: int, aggregates: int) -> None:
    for start in range(0, events, _STAGE_BATCH):
        async with database.tenant_transaction("bench") as session:
            for index in range(start, min(events, start + _STAGE_BATCH)):
                event = Int64Value(value=index)
                await stage(session, event, subject=subject(index, aggregates), source=SOURCE)


def _message(index: int, aggregates: int) -> tuple[str, bytes, dict[str, str]]:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="google.protobuf.Int64Value",
        source=SOURCE,
        subject=subject(index, aggregates),
        time=datetime.now(UTC),
        data=Int64Value(value=index).SerializeToString(),
    )
    return envelope.subject, envelope.data, envelope.attributes()
