"""The lag benchmark's other processes: writers committing on a schedule, and a relay.

Each runs in its own interpreter (multiprocessing spawn), as in a deployment, so the writers,
the relay and the consumer do not share one event loop. Commit times are `time.monotonic()`,
a system-wide clock on Linux, so the consumer's process can subtract them from its own.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

from google.protobuf.wrappers_pb2 import Int64Value

from services.chassis.db.database import Database
from services.chassis.events.outbox import stage
from services.chassis.events.relay import Relay

SOURCE = "//commerce-mesh/bench"
_WRITER_CONNECTIONS = 16


def subject(index: int, aggregates: int) -> str:
    return f"tenants/bench/orders/o{index % aggregates}"


def run_writers(
    app_url: str,
    results: Connection,
    *,
    share: tuple[int, int],
    rate: int,
    seconds: float,
    aggregates: int,
) -> None:
    """Commit this process's `share` (index, of how many) of `rate` events/s for `seconds`;
    send back {ce-id: commit time} and the duration."""
    committed, elapsed = asyncio.run(_offer(app_url, share, rate, seconds, aggregates))
    results.send((committed, elapsed))
    results.close()


def run_relay(
    app_url: str, topic_path: str, stop: ProcessEvent, results: Connection | None = None
) -> None:
    """A relay with its production defaults, until `stop` is set; sends back the CPU seconds
    (all threads of this process) it spent running, start-up (imports, connecting) excluded,
    and how many rounds published something."""
    cpu_s, rounds = asyncio.run(_relay(app_url, topic_path, stop))
    if results is not None:
        results.send((cpu_s, rounds))
        results.close()


async def _relay(app_url: str, topic_path: str, stop: ProcessEvent) -> tuple[float, int]:
    database = Database.connect(app_url, pool_size=2, max_overflow=0)
    relay = Relay(database, topic_path=topic_path)
    stopping = asyncio.Event()

    async def watch() -> None:
        await asyncio.to_thread(stop.wait)
        stopping.set()

    watcher = asyncio.create_task(watch())
    started = time.process_time()
    try:
        await relay.run(stopping)
        cpu_s = time.process_time() - started
    finally:
        await watcher
        await relay.aclose()
        await database.dispose()
    return cpu_s, relay.rounds


async def _offer(
    app_url: str, share: tuple[int, int], rate: int, seconds: float, aggregates: int
) -> tuple[dict[str, float], float]:
    database = Database.connect(app_url, pool_size=_WRITER_CONNECTIONS, max_overflow=0)
    limit = asyncio.Semaphore(_WRITER_CONNECTIONS)
    committed: dict[str, float] = {}

    async def write(index: int) -> None:
        async with limit, database.tenant_transaction("bench") as session:
            event_id = await stage(
                session, Int64Value(value=index), subject=subject(index, aggregates), source=SOURCE
            )
        committed[event_id] = time.monotonic()

    tasks: list[asyncio.Task[Any]] = []
    start = time.monotonic()
    try:
        first, step = share
        for index in range(first, int(rate * seconds), step):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(write(index)))
        await asyncio.gather(*tasks)
    finally:
        await database.dispose()
    return committed, time.monotonic() - start
