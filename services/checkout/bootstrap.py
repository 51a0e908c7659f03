"""Wiring: database (provisioned and migrated when given an admin URL), tax hook, payments
client, saga, server, recovery worker and outbox relay."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import PaymentsClient
from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from services.chassis.db.bootstrap import connect_service
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.settings import DatabaseSettings, load_database_settings
from services.chassis.events.relay import run_relay
from services.chassis.logs import configure_logging
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import configure as configure_telemetry
from services.chassis.worker import run_worker, worker_database
from services.checkout.api import CheckoutApi
from services.checkout.config import ERROR_DOMAIN, SERVICE, CheckoutSettings
from services.checkout.domain.ports import Checkpoint, ConfirmationCheck, captured_amount_matches
from services.checkout.domain.saga import CHECKPOINTS, Saga, SagaPolicy
from services.checkout.domain.tax import DEFAULT_RULES, RuleBasedTaxProvider, TaxCalculator
from services.checkout.metrics import SagaMetrics, StuckSagaMonitor
from services.checkout.payments import PaymentsAdapter
from services.checkout.recovery import RecoveryWorker
from services.checkout.storage.unit_of_work import SqlLeases, SqlTransactionRunner

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "storage" / "migrations"
SERVICE_ROLE = "service:checkout"
# A self-signed token toward payments lives 5 minutes and is reused for its first minute,
# rather than signed again for every call.
TOKEN_LIFETIME_SECONDS = 300
TOKEN_REUSE_SECONDS = 60
# A token file (a rotated, mounted token) is read again at most this often.
TOKEN_FILE_REREAD_SECONDS = 5.0


@dataclass
class CheckoutProcess:
    """A started checkout: its server, database, saga and recovery worker."""

    server: RunningServer
    database: Database
    runner: SqlTransactionRunner
    saga: Saga
    recovery: RecoveryWorker
    api: CheckoutApi
    stuck: StuckSagaMonitor


def crash_hook(point: str | None) -> Checkpoint:
    """The crash-matrix test hook: exit the process, at once and without cleanup, at `point`."""
    if point is None:
        return lambda _: None
    if point not in CHECKPOINTS:
        raise ValueError(f"crash_at must be one of {', '.join(CHECKPOINTS)}")

    def checkpoint(name: str) -> None:
        if name == point:
            log.warning("crash test hook: exiting at %s", name)
            os._exit(17)

    return checkpoint


def payments_token_provider(settings: CheckoutSettings) -> Callable[[], str]:
    """The bearer token of the `service:checkout` identity toward payments."""
    if settings.payments_token_file is not None:
        path = settings.payments_token_file
        read: list[tuple[float, str]] = []  # (when, token)

        def reread() -> str:
            now = time.monotonic()
            if not read or now - read[0][0] >= TOKEN_FILE_REREAD_SECONDS:
                read[:] = [(now, path.read_text().strip())]
            return read[0][1]

        return reread
    if settings.payments_token is not None:
        value = settings.payments_token.get_secret_value()
        return lambda: value
    auth = settings.auth
    if auth.key is None or not all(a.startswith("HS") for a in auth.algorithms):
        raise ValueError("set payments_token_file: checkout needs a token to call payments")
    secret = auth.key.get_secret_value()
    signed: list[tuple[int, str]] = []  # (when, token): one token serves a minute of calls

    def sign() -> str:
        now = int(time.time())
        if signed and now - signed[0][0] < TOKEN_REUSE_SECONDS:
            return signed[0][1]
        claims = {
            "sub": "checkout",
            "roles": [SERVICE_ROLE],
            "iss": auth.issuer,
            "aud": auth.audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        token = jwt.encode(claims, secret, algorithm=auth.algorithms[0])
        signed[:] = [(now, token)]
        return token

    return sign


def payments_client(settings: CheckoutSettings) -> tuple[PaymentsClient, grpc.aio.Channel]:
    channel = create_channel(settings.payments_addr)
    client = PaymentsClient(
        channel,
        ClientSettings(
            default_timeout=settings.payments_timeout_seconds,
            token_provider=payments_token_provider(settings),
        ),
    )
    return client, channel


def build_saga(
    settings: CheckoutSettings,
    database: Database,
    client: PaymentsClient,
    confirmation: ConfirmationCheck = captured_amount_matches,
    checkpoint: Checkpoint | None = None,
    *,
    saga_metrics: SagaMetrics | None = None,
) -> tuple[SqlTransactionRunner, SqlLeases, Saga]:
    runner = SqlTransactionRunner(database)
    leases = SqlLeases(database)
    saga = Saga(
        runner,
        PaymentsAdapter(client, timeout=settings.payments_timeout_seconds),
        leases,
        checkpoint=checkpoint or crash_hook(settings.crash_at),
        confirmation=confirmation,
        policy=SagaPolicy(
            max_attempts=settings.saga.max_attempts,
            base_delay=settings.saga.base_delay_seconds,
            max_delay=settings.saga.max_delay_seconds,
            lease_seconds=settings.saga.lease_seconds,
        ),
        on_done=(saga_metrics or SagaMetrics()).done,
    )
    return runner, leases, saga


def build_api(settings: CheckoutSettings, runner: SqlTransactionRunner, saga: Saga) -> CheckoutApi:
    rules = RuleBasedTaxProvider(DEFAULT_RULES)
    return CheckoutApi(
        runner,
        TaxCalculator(rules, rules, timeout=settings.tax.timeout_seconds),
        saga,
        place_order_budget=settings.saga.place_order_budget_seconds,
        checkpoint=crash_hook(settings.crash_at),
    )


def registration(api: CheckoutApi) -> ServiceRegistration:
    return ServiceRegistration(
        descriptor=pb.DESCRIPTOR.services_by_name["CheckoutService"],
        servicer=api,
        add_to_server=rpc.add_CheckoutServiceServicer_to_server,
    )


async def connect(
    settings: CheckoutSettings, db_settings: DatabaseSettings
) -> tuple[Database, EmbeddedPostgres | None]:
    """The checkout database as its app role, and the embedded PostgreSQL if one was started."""
    return await connect_service(
        SERVICE,
        db_settings,
        migrations=MIGRATIONS,
        owner_password=settings.owner_password,
        app_password=settings.app_password,
    )


async def start(settings: CheckoutSettings, db_settings: DatabaseSettings) -> CheckoutProcess:
    """Connect (provisioning if needed), start serving and recovering sagas."""
    database, embedded = await connect(settings, db_settings)
    client, channel = payments_client(settings)
    saga_metrics = SagaMetrics()
    runner, leases, saga = build_saga(settings, database, client, saga_metrics=saga_metrics)
    api = build_api(settings, runner, saga)
    server = await start_server(settings, [registration(api)], error_domain=ERROR_DOMAIN)
    recovery = RecoveryWorker(
        saga,
        leases,
        interval=settings.saga.recovery_interval_seconds,
        batch=settings.saga.recovery_batch,
    )
    if settings.saga.recover_in_server:
        recovery.start()
    stuck = StuckSagaMonitor(
        database,
        saga_metrics,
        after=settings.saga.stuck_after_seconds,
        interval=settings.saga.stuck_check_interval_seconds,
    )
    stuck.start()
    server.on_drain.extend(
        [recovery.stop, stuck.stop, api.drain, lambda: channel.close(None), database.dispose]
    )
    if embedded is not None:
        server.on_drain.append(lambda: asyncio.to_thread(embedded.stop))
    return CheckoutProcess(server, database, runner, saga, recovery, api, stuck)


async def relay() -> None:
    """`python -m services.checkout relay`: publish the outbox to `checkout-events` until
    SIGTERM, then flush (PUBSUB_EMULATOR_HOST / PUBSUB_PROJECT_ID select the server)."""
    settings = CheckoutSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        await run_relay(SERVICE, database, settings.worker)


async def recover() -> None:
    """`python -m services.checkout recover`: only the saga recovery worker, until SIGTERM."""
    settings = CheckoutSettings()
    configure_logging(SERVICE, settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        client, channel = payments_client(settings)
        _, leases, saga = build_saga(settings, database, client)
        worker = RecoveryWorker(
            saga,
            leases,
            interval=settings.saga.recovery_interval_seconds,
            batch=settings.saga.recovery_batch,
        )
        try:
            await run_worker("checkout-recovery", settings.worker, worker.run)
        finally:
            await channel.close(None)


async def serve() -> None:
    """`python -m services.checkout`: read settings, start, serve until SIGTERM, drain."""
    settings = CheckoutSettings()
    configure_logging(SERVICE, settings.log_level)
    telemetry = configure_telemetry(SERVICE, settings.telemetry)
    process = await start(settings, load_database_settings(SERVICE))
    process.server.on_drain.append(lambda: asyncio.to_thread(telemetry.shutdown))
    await process.server.serve_until_signalled()
