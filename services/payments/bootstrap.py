"""Wiring: database (provisioned and migrated when given an admin URL), PSPs, ledger client,
server, the unknown-outcome resolver and the webhook endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import LedgerClient
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from services.chassis.db.bootstrap import connect_service
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.settings import DatabaseSettings, load_database_settings
from services.chassis.events.relay import run_relay
from services.chassis.logs import configure_logging
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import configure as configure_telemetry
from services.chassis.worker import worker_database
from services.payments.api import PaymentsApi
from services.payments.config import (
    ERROR_DOMAIN,
    SERVICE,
    PaymentsSettings,
    PspCredentials,
    ReconciliationSettings,
    load_psp_file,
)
from services.payments.ledger import LedgerPostings
from services.payments.psp.registry import PspRegistry, build_registry, http_client
from services.payments.reconciliation.ports import SettlementReports
from services.payments.reconciliation.reports import (
    FileSettlementReports,
    HttpSettlementReports,
    SettlementReportsByScheme,
)
from services.payments.reconciliation.service import (
    ReconciliationOptions,
    ReconciliationService,
    ReconciliationWorker,
)
from services.payments.resolver import OutcomeResolver
from services.payments.service import PaymentsService, ServiceOptions
from services.payments.storage.unit_of_work import TransactionRunner
from services.payments.webhook_http import RunningWebhookEndpoint, start_webhook_endpoint

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "storage" / "migrations"
SERVICE_ROLE = "service:payments"
# Libraries that log the values they handle at DEBUG: protovalidate's CEL engine (celpy)
# logs every evaluated field, card numbers included, before the request is refused.
VALUE_ECHOING_LOGGERS = ("celpy",)


def quiet_value_echoing_loggers() -> None:
    """Keep value-echoing libraries at WARNING whatever the service's log level (PCI)."""
    for name in VALUE_ECHOING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_payments_logging(level: str) -> None:
    configure_logging(SERVICE, level)
    quiet_value_echoing_loggers()


@dataclass
class PaymentsProcess:
    server: RunningServer
    database: Database
    service: PaymentsService
    registry: PspRegistry
    resolver: OutcomeResolver
    webhooks: RunningWebhookEndpoint | None = None
    closers: list[object] = field(default_factory=list)


def registration(
    service: PaymentsService,
    runner: TransactionRunner,
    reconciliation: ReconciliationService | None = None,
) -> ServiceRegistration:
    return ServiceRegistration(
        descriptor=pb.DESCRIPTOR.services_by_name["PaymentsService"],
        servicer=PaymentsApi(service, runner, reconciliation),
        add_to_server=rpc.add_PaymentsServiceServicer_to_server,
    )


def ledger_token_provider(settings: PaymentsSettings) -> object:
    """The bearer token of the `service:payments` identity (see the settings)."""
    if settings.ledger_token_file is not None:
        path = settings.ledger_token_file
        return lambda: path.read_text().strip()
    if settings.ledger_token is not None:
        value = settings.ledger_token.get_secret_value()
        return lambda: value
    auth = settings.auth
    if not all(a.startswith("HS") for a in auth.algorithms):
        raise ValueError("set ledger_token_file: payments needs a token to call the ledger")
    secret = auth.verification_key()  # an HMAC secret (from auth.key or auth.key_file)

    def sign() -> str:
        now = int(time.time())
        claims = {
            "sub": "payments",
            "roles": [SERVICE_ROLE],
            "iss": auth.issuer,
            "aud": auth.audience,
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, secret, algorithm=auth.algorithms[0])

    return sign


async def connect(
    settings: PaymentsSettings, db_settings: DatabaseSettings
) -> tuple[Database, EmbeddedPostgres | None]:
    """The payments database as its app role, and the embedded PostgreSQL if one was started."""
    return await connect_service(
        SERVICE,
        db_settings,
        migrations=MIGRATIONS,
        owner_password=settings.owner_password,
        app_password=settings.app_password,
    )


def settlement_reports(
    config: ReconciliationSettings,
    credentials: Mapping[str, PspCredentials],
    client: httpx.AsyncClient,
) -> SettlementReportsByScheme:
    """The settlement report adapters with their allow-lists: the configured base URLs plus
    every sandbox PSP's `/v1/settlements`, and the configured directory (if any)."""
    bases = [
        *config.report_base_urls,
        *(
            f"{c.base_url.rstrip('/')}/v1/settlements"
            for c in credentials.values()
            if c.kind == "sandbox"
        ),
    ]
    http = HttpSettlementReports(client, bases, timeout=config.download_timeout_seconds)
    adapters: dict[str, SettlementReports] = {"http": http, "https": http}
    if config.report_dir is not None:
        adapters["file"] = FileSettlementReports(config.report_dir)
    return SettlementReportsByScheme(adapters)


def build_reconciliation(
    settings: PaymentsSettings,
    runner: TransactionRunner,
    *,
    credentials: Mapping[str, PspCredentials],
    service: PaymentsService,
    ledger: LedgerClient,
    postings: LedgerPostings,
    client: httpx.AsyncClient,
) -> ReconciliationService:
    config = settings.reconciliation
    return ReconciliationService(
        runner,
        psps=lambda: service.psp_ids,
        reports=settlement_reports(config, credentials, client),
        ledger=ledger,
        postings=postings,
        options=ReconciliationOptions(
            lease_seconds=config.lease_seconds, max_attempts=config.max_attempts
        ),
    )


def build_service(
    settings: PaymentsSettings, runner: TransactionRunner
) -> tuple[PaymentsService, PspRegistry, list[object], ReconciliationService]:
    """The use cases with their PSPs and ledger client (closers: what to close at drain:
    the PSP HTTP client, the ledger channel, the settlement report HTTP client)."""
    credentials = (
        load_psp_file(settings.psp.credentials_file) if settings.psp.credentials_file else {}
    )
    client = http_client(settings.psp)
    registry = build_registry(credentials, settings.psp, client)
    channel = create_channel(settings.ledger_addr)
    ledger = LedgerClient(
        channel,
        ClientSettings(
            default_timeout=settings.ledger_timeout_seconds,
            token_provider=ledger_token_provider(settings),  # type: ignore[arg-type]
        ),
    )
    postings = LedgerPostings(ledger, timeout=settings.ledger_timeout_seconds)
    service = PaymentsService(
        runner,
        registry.psps,
        postings,
        webhook_secrets=registry.webhook_secrets,
        options=ServiceOptions(
            psp_deadline_seconds=settings.psp.deadline_seconds,
            lease_seconds=settings.lease_seconds,
            webhook_tolerance_seconds=settings.psp.webhook_tolerance_seconds,
        ),
    )
    # Reports are fetched without following redirects: a redirect must not leave the allow-list.
    reports_client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
    reconciliation = build_reconciliation(
        settings,
        runner,
        credentials=credentials,
        service=service,
        ledger=ledger,
        postings=postings,
        client=reports_client,
    )
    return service, registry, [client, channel, reports_client], reconciliation


async def start(settings: PaymentsSettings, db_settings: DatabaseSettings) -> PaymentsProcess:
    database, embedded = await connect(settings, db_settings)
    runner = TransactionRunner(database)
    service, registry, closers, reconciliation = build_service(settings, runner)
    server = await start_server(
        settings, [registration(service, runner, reconciliation)], error_domain=ERROR_DOMAIN
    )
    resolver = OutcomeResolver(service, interval=settings.resolve_interval_seconds)
    resolver.start()
    # Runs a stopped or crashed process left RUNNING are resumed (ADR 0013).
    recon_worker = ReconciliationWorker(
        reconciliation, interval=settings.reconciliation.resume_interval_seconds
    )
    recon_worker.start()
    process = PaymentsProcess(server, database, service, registry, resolver, closers=closers)
    if settings.webhook_http_port is not None:
        process.webhooks = await start_webhook_endpoint(
            service, host=settings.webhook_http_host, port=settings.webhook_http_port
        )
        server.on_drain.append(process.webhooks.close)
    client, channel, reports_client = closers

    async def close_clients() -> None:
        await client.aclose()  # type: ignore[attr-defined]
        await reports_client.aclose()  # type: ignore[attr-defined]
        await channel.close()  # type: ignore[attr-defined]

    server.on_drain.extend([resolver.stop, recon_worker.stop, close_clients, database.dispose])
    if embedded is not None:
        server.on_drain.append(lambda: asyncio.to_thread(embedded.stop))
    return process


async def relay() -> None:
    """`python -m services.payments relay`: publish the outbox to `payments-events` until
    SIGTERM, then flush (PUBSUB_EMULATOR_HOST / PUBSUB_PROJECT_ID select the server)."""
    settings = PaymentsSettings()
    configure_payments_logging(settings.log_level)
    async with worker_database(
        SERVICE, settings.telemetry, lambda: connect(settings, load_database_settings(SERVICE))
    ) as database:
        await run_relay(SERVICE, database, settings.worker)


async def serve() -> None:
    """`python -m services.payments`: read settings, start, serve until SIGTERM, drain."""
    settings = PaymentsSettings()
    configure_payments_logging(settings.log_level)
    telemetry = configure_telemetry(SERVICE, settings.telemetry)
    process = await start(settings, load_database_settings(SERVICE))
    process.server.on_drain.append(lambda: asyncio.to_thread(telemetry.shutdown))
    await process.server.serve_until_signalled()
