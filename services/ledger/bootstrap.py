"""Wiring: database (provisioned and migrated when given an admin URL), server, sweeper."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from services.chassis.db.bootstrap import connect_service
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.settings import DatabaseSettings, load_database_settings
from services.chassis.events.relay import run_relay
from services.chassis.logs import configure_logging
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import configure as configure_telemetry
from services.chassis.worker import worker_database
from services.ledger.api import LedgerApi
from services.ledger.config import ERROR_DOMAIN, SERVICE, LedgerSettings
from services.ledger.metrics import ChainAuditor, ChainMetrics
from services.ledger.storage.unit_of_work import SqlTransactionRunner
from services.ledger.sweeper import HoldExpirySweeper

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "storage" / "migrations"


@dataclass
class LedgerProcess:
    """A started ledger: its server, database and sweeper."""

    server: RunningServer
    database: Database
    runner: SqlTransactionRunner
    sweeper: HoldExpirySweeper
    auditor: ChainAuditor | None = None


def registration(
    runner: SqlTransactionRunner, chain_metrics: ChainMetrics | None = None
) -> ServiceRegistration:
    return ServiceRegistration(
        descriptor=pb.DESCRIPTOR.services_by_name["LedgerService"],
        servicer=LedgerApi(runner, chain_metrics),
        add_to_server=rpc.add_LedgerServiceServicer_to_server,
    )


async def connect(
    settings: LedgerSettings, db_settings: DatabaseSettings
) -> tuple[Database, EmbeddedPostgres | None]:
    """The ledger database as its app role, and the embedded PostgreSQL if one was started."""
    return await connect_service(
        SERVICE,
        db_settings,
        migrations=MIGRATIONS,
        owner_password=settings.owner_password,
        app_password=settings.app_password,
    )


async def start(settings: LedgerSettings, db_settings: DatabaseSettings) -> LedgerProcess:
    """Connect (provisioning if needed), start serving and sweeping."""
    database, embedded = await connect(settings, db_settings)
    runner = SqlTransactionRunner(database)
    chain_metrics = ChainMetrics()
    server = await start_server(
        settings, [registration(runner, chain_metrics)], error_domain=ERROR_DOMAIN
    )
    sweeper = HoldExpirySweeper(
        runner, interval=settings.hold_sweep_interval_seconds, batch=settings.hold_sweep_batch
    )
    sweeper.start()
    server.on_drain.append(sweeper.stop)
    auditor = None
    if settings.chain_verify_interval_seconds is not None:
        auditor = ChainAuditor(
            runner, chain_metrics, interval=settings.chain_verify_interval_seconds
        )
        auditor.start()
        server.on_drain.append(auditor.stop)
    server.on_drain.append(database.dispose)
    if embedded is not None:
        server.on_drain.append(lambda: asyncio.to_thread(embedded.stop))
    return LedgerProcess(server, database, runner, sweeper, auditor)


async def relay() -> None:
    """`python -m services.ledger relay`: publish the ledger's outbox to `ledger-events`
    until SIGTERM, then flush (PUBSUB_EMULATOR_HOST / PUBSUB_PROJECT_ID select the server)."""
    settings = LedgerSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        await run_relay(SERVICE, database, settings.worker)


async def serve() -> None:
    """`python -m services.ledger`: read settings, start, serve until SIGTERM, drain."""
    settings = LedgerSettings()
    configure_logging(SERVICE, settings.log_level)
    telemetry = configure_telemetry(SERVICE, settings.telemetry)
    process = await start(settings, load_database_settings(SERVICE))
    process.server.on_drain.append(lambda: asyncio.to_thread(telemetry.shutdown))
    await process.server.serve_until_signalled()
