"""Run a background worker (outbox relay, event consumer, saga recovery) as a process.

A worker has no RPCs of its own, but Kubernetes still needs to probe it: `run_worker` serves
grpc.health.v1 on `worker.health_port` (k8s/base/*/relay.yaml), SERVING while the work runs,
NOT_SERVING once it drains or fails. SIGTERM/SIGINT set the stop event the work watches; the work
then finishes what it holds (a relay flushes its publishes) and returns. A failing worker re-raises,
so the process exits non-zero and is restarted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from pydantic import BaseModel, Field

from services.chassis.telemetry import TelemetrySettings
from services.chassis.telemetry import configure as configure_telemetry

if TYPE_CHECKING:
    from services.chassis.db.database import Database
    from services.chassis.db.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class WorkerSettings(BaseModel):
    """Where a worker process answers health checks; no port, no health server."""

    health_host: str = "127.0.0.1"
    health_port: Annotated[int, Field(ge=0, le=65535)] | None = None


class WorkerHealth:
    """The health endpoint of one worker; `port` is the bound port (useful with port 0)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._servicer = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self._settings.health_port is None:
            return
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        self.port = server.add_insecure_port(
            f"{self._settings.health_host}:{self._settings.health_port}"
        )
        await server.start()
        self._server = server
        await self._servicer.set("", NOT_SERVING)

    async def set(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        await self._servicer.set("", status)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None


async def run_worker(
    name: str,
    settings: WorkerSettings,
    work: Callable[[asyncio.Event], Awaitable[None]],
    *,
    stop: asyncio.Event | None = None,
    health: WorkerHealth | None = None,
) -> None:
    """Run `work(stop)` until it returns; SIGTERM/SIGINT (or setting `stop`) asks it to end."""
    stop = stop or asyncio.Event()
    health = health or WorkerHealth(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await health.start()
    try:
        await health.set(SERVING)
        log.info("worker %s running (health port %s)", name, health.port)
        await work(stop)
        log.info("worker %s stopped", name)
    except Exception:
        log.exception("worker %s failed", name)
        raise
    finally:
        await health.set(NOT_SERVING)
        await health.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@asynccontextmanager
async def worker_database(
    service: str,
    telemetry: TelemetrySettings,
    connect: Callable[[], Awaitable[tuple[Database, EmbeddedPostgres | None]]],
) -> AsyncIterator[Database]:
    """What a worker process (relay, consumer, recovery) holds around its work: the process's
    telemetry and its service database (with the embedded PostgreSQL, if `connect` started
    one); all let go, in reverse order, when the block ends."""
    installed = configure_telemetry(service, telemetry)
    try:
        database, embedded = await connect()
        try:
            yield database
        finally:
            await database.dispose()
            if embedded is not None:
                embedded.stop()
    finally:
        installed.shutdown()
