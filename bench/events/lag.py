"""End-to-end lag at a fixed offered rate: writer commit → consumer effect committed.

Writers (one process) commit one event per transaction on a schedule (open loop: a slow system
does not slow the offered load down); a relay (another process) and a consumer (this process)
run as they would in services; the consumer's effect is its inbox row, and its commit time is
taken after the transaction, before the ack.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import Int64Value

from bench.events import processes
from bench.events.environment import BenchEnvironment
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.consumer import Consumer, ConsumerSettings
from services.chassis.events.envelope import Envelope
from services.chassis.events.topology import Subscription, Topic, Topology

_DRAIN_TIMEOUT_S = 120.0
_WRITES_PER_PROCESS = 250
_RELAY_SHARE = sa.text(
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
    " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) FROM"
    " (SELECT 1000 * extract(epoch FROM published_at - created_at) AS lag FROM outbox) AS lags"
)


@dataclass(frozen=True)
class LagResult:
    """One run at one offered rate."""

    offered_per_s: float
    committed_per_s: float
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    relay_p50_ms: float
    relay_p99_ms: float
    writer_processes: int
    consumer_streams: int
    consumer_cpu_ms_per_event: float
    relay_cpu_ms_per_event: float
    relay_rounds: int


async def measure_lag(
    env: BenchEnvironment, *, rate: int, seconds: float, aggregates: int, streams: int
) -> LagResult:
    """Offer `rate` events/s for `seconds` and measure each event's commit → effect lag."""
    name = f"bench-lag-{rate}-{int(time.time())}"
    subscription = Subscription(name=f"{name}-consumer", topic=name)
    _apply(env, Topology(topics=(Topic(name),), subscriptions=(subscription,)))
    applied: dict[str, float] = {}

    async def noted(envelope: Envelope) -> None:
        applied[envelope.id] = time.monotonic()

    async def no_effect(session: Any, event: Int64Value, envelope: Envelope) -> None:
        """The inbox row written with it is the effect."""

    app_url = env.app_url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    stop_relay = spawn.Event()
    relay_cpu, relay_cpu_sending = spawn.Pipe(duplex=False)
    relay = spawn.Process(
        target=processes.run_relay,
        args=(app_url, pubsub.topic_path(env.project, name), stop_relay, relay_cpu_sending),
    )
    # One writer process commits about 250 transactions/s here; split bigger rates.
    count = max(1, math.ceil(rate / _WRITES_PER_PROCESS))
    pipes = [spawn.Pipe(duplex=False) for _ in range(count)]
    writers = [
        spawn.Process(
            target=processes.run_writers,
            args=(app_url, sending),
            kwargs={
                "share": (index, count),
                "rate": rate,
                "seconds": seconds,
                "aggregates": aggregates,
            },
        )
        for index, (_, sending) in enumerate(pipes)
    ]
    consumer_db = env.connect(8)
    consumer = Consumer(
        consumer_db,
        ConsumerSettings.from_topology(subscription, env.project, streams=streams),
        before_ack=noted,
    )
    consumer.handle(Int64Value, no_effect)
    try:
        await _clear_outbox(consumer_db)
        cpu_before = time.process_time()
        await consumer.start()
        relay.start()
        for writer in writers:
            writer.start()
        committed: dict[str, float] = {}
        writing = 0.0
        for (receiving, _), writer in zip(pipes, writers, strict=True):
            share, elapsed = await asyncio.to_thread(receiving.recv)
            committed.update(share)
            writing = max(writing, elapsed)
            await asyncio.to_thread(writer.join)
        await _wait_applied(committed, applied)
        # This process is the consumer (and its Pub/Sub client threads), nothing else.
        cpu_s = time.process_time() - cpu_before
        relay_p50_ms, relay_p99_ms = await _relay_share(consumer_db)
    finally:
        stop_relay.set()
        relay_cpu_s, relay_rounds = float("nan"), 0
        if relay.pid is not None:
            if await asyncio.to_thread(relay_cpu.poll, 30):
                relay_cpu_s, relay_rounds = relay_cpu.recv()
            await asyncio.to_thread(relay.join, 30)
        await consumer.stop()
        await consumer_db.dispose()
    lags = sorted((applied[i] - committed[i]) * 1000 for i in committed)
    return LagResult(
        offered_per_s=rate,
        committed_per_s=len(committed) / writing,
        events=len(committed),
        p50_ms=statistics.median(lags),
        p99_ms=lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        max_ms=lags[-1],
        relay_p50_ms=relay_p50_ms,
        relay_p99_ms=relay_p99_ms,
        writer_processes=count,
        consumer_streams=streams,
        consumer_cpu_ms_per_event=1000 * cpu_s / max(1, len(committed)),
        relay_cpu_ms_per_event=1000 * relay_cpu_s / max(1, len(committed)),
        relay_rounds=relay_rounds,
    )


async def _relay_share(database: Any) -> tuple[float, float]:
    """p50/p99 of staged → published (the relay's part of the lag), from the outbox itself."""
    async with database.transaction() as session:
        result = await session.execute(_RELAY_SHARE)
        p50, p99 = result.one()
    return float(p50 or 0.0), float(p99 or 0.0)


async def _clear_outbox(database: Any) -> None:
    """Drop earlier runs' rows, so the relay's share is this run's alone."""
    async with database.transaction() as session:
        await session.execute(sa.text("DELETE FROM outbox"))


async def _wait_applied(committed: dict[str, float], applied: dict[str, float]) -> None:
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while not committed.keys() <= applied.keys():
        if time.monotonic() > deadline:
            missing = len(committed.keys() - applied.keys())
            raise RuntimeError(f"{missing} events not applied within {_DRAIN_TIMEOUT_S}s")
        await asyncio.sleep(0.05)


def _apply(env: BenchEnvironment, topology: Topology) -> None:
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    try:
        apply_topology(topology, env.project, publisher, subscriber)
    finally:
        publisher.stop()
        subscriber.close()
