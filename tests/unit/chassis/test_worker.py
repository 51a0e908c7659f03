"""A worker process answers grpc.health.v1 while its work runs, and stops with it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.chassis.config import ServerSettings
from services.chassis.worker import WorkerHealth, WorkerSettings, run_worker

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        return int(reply.status)


async def test_serving_while_the_work_runs_and_gone_after_it_stops() -> None:
    settings = WorkerSettings(health_port=0)
    health = WorkerHealth(settings)
    stop = asyncio.Event()
    running = asyncio.Event()
    seen: list[int] = []

    async def work(stop: asyncio.Event) -> None:
        running.set()
        await stop.wait()
        assert health.port is not None
        seen.append(await _status(health.port))  # still answering while it drains

    task = asyncio.create_task(run_worker("test", settings, work, stop=stop, health=health))
    await asyncio.wait_for(running.wait(), 5)
    assert health.port is not None
    port = health.port
    assert await _status(port) == SERVING
    stop.set()
    await asyncio.wait_for(task, 5)
    assert seen == [SERVING]
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await _status(port)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_failing_worker_reports_not_serving_and_reraises() -> None:
    settings = WorkerSettings(health_port=0)
    health = WorkerHealth(settings)
    observed: list[int] = []
    original_stop = health.stop

    async def record_then_stop() -> None:
        assert health.port is not None
        observed.append(await _status(health.port))
        await original_stop()

    health.stop = record_then_stop  # type: ignore[method-assign]

    async def work(_: asyncio.Event) -> None:
        raise RuntimeError("publisher lost")

    with pytest.raises(RuntimeError, match="publisher lost"):
        await run_worker("test", settings, work, health=health)
    assert observed == [NOT_SERVING]


async def test_without_a_port_no_health_server_is_started() -> None:
    health = WorkerHealth(WorkerSettings())

    async def work(_: asyncio.Event) -> None:
        return None

    await run_worker("test", WorkerSettings(), work, health=health)
    assert health.port is None


def test_the_health_port_is_read_from_the_service_environment(monkeypatch) -> None:
    monkeypatch.setenv("COMMERCE_WORKER__HEALTH_PORT", "50060")
    monkeypatch.setenv("COMMERCE_WORKER__HEALTH_HOST", "::")
    monkeypatch.setenv("COMMERCE_AUTH__KEY", "secret")
    settings = ServerSettings()
    assert settings.worker == WorkerSettings(health_host="::", health_port=50060)
