"""Wiring: database (provisioned and migrated when given an admin URL), server, relay, consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jwt

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import LedgerClient, PaymentsClient
from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import invoicing_service_pb2_grpc as rpc
from services.chassis.db.bootstrap import connect_service
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.settings import DatabaseSettings, load_database_settings
from services.chassis.events import pubsub
from services.chassis.events.consumer import ConsumerSettings
from services.chassis.events.dead_letter import DeadLetterMonitor
from services.chassis.events.mesh import MESH_TOPOLOGY
from services.chassis.events.relay import run_relay
from services.chassis.logs import configure_logging
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import configure as configure_telemetry
from services.chassis.worker import run_worker, worker_database
from services.invoicing.api import InvoicingApi
from services.invoicing.config import ERROR_DOMAIN, SERVICE, InvoicingSettings
from services.invoicing.consumer import (
    CHECKOUT_SUBSCRIPTION,
    PAYMENTS_SUBSCRIPTION,
    checkout_consumer,
    payments_consumer,
)
from services.invoicing.domain.ports import LedgerView, PaymentsView
from services.invoicing.downstream import GrpcLedgerView, GrpcPaymentsView, LedgerAccounts
from services.invoicing.ledger_poster import LedgerPoster, PosterSettings, PostingWorker
from services.invoicing.storage.unit_of_work import SqlTransactionRunner
from services.invoicing.tie_out import TieOutService, ViewsFor

log = logging.getLogger(__name__)
SERVICE_ROLE = "service:invoicing"
MIGRATIONS = Path(__file__).parent / "storage" / "migrations"


@dataclass
class InvoicingProcess:
    server: RunningServer
    database: Database
    runner: SqlTransactionRunner


def registration(
    runner: SqlTransactionRunner, tie_out: TieOutService | None
) -> ServiceRegistration:
    return ServiceRegistration(
        descriptor=pb.DESCRIPTOR.services_by_name["InvoicingService"],
        servicer=InvoicingApi(runner, tie_out),
        add_to_server=rpc.add_InvoicingServiceServicer_to_server,
    )


def grpc_views(settings: InvoicingSettings) -> ViewsFor:
    """Tie-out views over the payments and ledger services (one channel each, shared)."""
    payments = PaymentsClient(create_channel(settings.payments_addr))
    ledger = LedgerClient(create_channel(settings.ledger_addr))
    accounts = LedgerAccounts(
        frozenset(settings.revenue_accounts), frozenset(settings.tax_accounts)
    )

    def views(tenant: str, metadata: Sequence[tuple[str, str]]) -> tuple[PaymentsView, LedgerView]:
        return (
            GrpcPaymentsView(payments, tenant, metadata),
            GrpcLedgerView(ledger, tenant, accounts, metadata),
        )

    return views


def ledger_token_provider(settings: InvoicingSettings) -> Callable[[], str]:
    """The bearer token of the `service:invoicing` identity toward the ledger (the poster)."""
    if settings.ledger_token_file is not None:
        path = settings.ledger_token_file
        return lambda: path.read_text().strip()
    if settings.ledger_token is not None:
        value = settings.ledger_token.get_secret_value()
        return lambda: value
    auth = settings.auth
    if not all(a.startswith("HS") for a in auth.algorithms):
        raise ValueError("set ledger_token_file: the ledger poster needs a token for the ledger")
    secret = auth.verification_key()  # an HMAC secret (from auth.key or auth.key_file)

    def sign() -> str:
        now = int(time.time())
        claims = {
            "sub": SERVICE,
            "roles": [SERVICE_ROLE],
            "iss": auth.issuer,
            "aud": auth.audience,
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, secret, algorithm=auth.algorithms[0])

    return sign


async def connect(
    settings: InvoicingSettings, db_settings: DatabaseSettings
) -> tuple[Database, EmbeddedPostgres | None]:
    """The invoicing database as its app role, and the embedded PostgreSQL if one was started."""
    return await connect_service(
        SERVICE,
        db_settings,
        migrations=MIGRATIONS,
        owner_password=settings.owner_password,
        app_password=settings.app_password,
    )


async def start(settings: InvoicingSettings, db_settings: DatabaseSettings) -> InvoicingProcess:
    database, embedded = await connect(settings, db_settings)
    runner = SqlTransactionRunner(database)
    tie_out = TieOutService(runner, grpc_views(settings))
    server = await start_server(
        settings, [registration(runner, tie_out)], error_domain=ERROR_DOMAIN
    )
    server.on_drain.append(database.dispose)
    if embedded is not None:
        server.on_drain.append(lambda: asyncio.to_thread(embedded.stop))
    return InvoicingProcess(server, database, runner)


async def serve() -> None:
    """`python -m services.invoicing`: read settings, start, serve until SIGTERM, drain."""
    settings = InvoicingSettings()
    configure_logging(SERVICE, settings.log_level)
    telemetry = configure_telemetry(SERVICE, settings.telemetry)
    process = await start(settings, load_database_settings(SERVICE))
    process.server.on_drain.append(lambda: asyncio.to_thread(telemetry.shutdown))
    await process.server.serve_until_signalled()


async def relay() -> None:
    """`python -m services.invoicing relay`: publish the outbox to `invoicing-events` until
    SIGTERM, then flush (PUBSUB_EMULATOR_HOST / PUBSUB_PROJECT_ID select the server)."""
    settings = InvoicingSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        await run_relay(SERVICE, database, settings.worker)


async def consume() -> None:
    """`python -m services.invoicing consume`: apply CheckoutCompleted and payments' events
    (inbox-deduplicated) until SIGTERM, then let in-flight messages finish."""
    settings = InvoicingSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        project = pubsub.project_id()
        consumers = [
            checkout_consumer(
                database,
                ConsumerSettings.from_topology(
                    MESH_TOPOLOGY.subscription(CHECKOUT_SUBSCRIPTION),
                    project,
                    streams=settings.consumer_streams,
                ),
            ),
            payments_consumer(
                database,
                ConsumerSettings.from_topology(
                    MESH_TOPOLOGY.subscription(PAYMENTS_SUBSCRIPTION),
                    project,
                    streams=settings.consumer_streams,
                ),
            ),
        ]

        interval = settings.dead_letter_check_interval_seconds
        subscriber = pubsub.subscriber() if interval is not None else None

        async def work(stop: asyncio.Event) -> None:
            for consumer in consumers:
                await consumer.start()
            depth = None
            if subscriber is not None and interval is not None:
                monitor = DeadLetterMonitor(
                    subscriber,
                    project,
                    [CHECKOUT_SUBSCRIPTION, PAYMENTS_SUBSCRIPTION],
                    limit=settings.dead_letter_count_limit,
                )
                depth = asyncio.create_task(monitor.run(stop, interval), name="dead-letter-depth")
            try:
                await stop.wait()
            finally:
                for consumer in consumers:
                    await consumer.stop()
                if depth is not None:  # a reading in progress is not worth waiting for
                    depth.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await depth

        try:
            await run_worker("invoicing-consumer", settings.worker, work)
        finally:
            if subscriber is not None:
                subscriber.close()


async def post_ledger() -> None:
    """`python -m services.invoicing post-ledger`: post the revenue, tax, receivable and
    customer-funds journals `ledger_postings_due` holds to the ledger until SIGTERM."""
    settings = InvoicingSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        channel = create_channel(settings.ledger_addr)
        client = LedgerClient(
            channel,
            ClientSettings(
                default_timeout=settings.ledger_timeout_seconds,
                token_provider=ledger_token_provider(settings),
            ),
        )
        worker = PostingWorker(
            database,
            LedgerPoster(client, timeout=settings.ledger_timeout_seconds),
            PosterSettings(
                batch_size=settings.poster_batch_size,
                idle_seconds=settings.poster_idle_seconds,
                retention=timedelta(days=settings.poster_retention_days),
            ),
        )
        try:
            await run_worker("invoicing-ledger-poster", settings.worker, worker.run)
        finally:
            await channel.close(None)
