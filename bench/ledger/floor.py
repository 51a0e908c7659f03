"""`python -m bench.ledger.floor`: the ledger's stack with no ledger work — the bench's floor.

The same chassis server as `python -m services.ledger` (same settings from `COMMERCE_LEDGER_*`,
same interceptors: JWT, RBAC, tenant, validation of the full request, card-data guard), the
same LedgerService contract and the same database pool, but `CreateJournalEntry` and
`BatchCreateJournalEntries` only run one trivial tenant transaction (BEGIN, the tenant
setting, `SELECT 1`, COMMIT) and echo the entries back. What a request costs before the
ledger does anything: a ledger figure cannot beat this one on the same box. The bench's own
instrument; never deployed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from services.chassis import context as request_context
from services.chassis.db.database import Database
from services.chassis.db.settings import load_database_settings
from services.chassis.logs import configure_logging
from services.chassis.server import ServiceRegistration, start_server
from services.chassis.telemetry import configure as configure_telemetry
from services.ledger.config import ERROR_DOMAIN, SERVICE, LedgerSettings

_TRIVIAL = text("SELECT 1")


class FloorApi(rpc.LedgerServiceServicer):
    """Entry RPCs that do one trivial tenant transaction and no ledger work."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def _transaction(self) -> None:
        tenant = request_context.current().tenant
        if tenant is None:
            raise LookupError("no tenant for this call")
        async with self._database.tenant_transaction(tenant) as session:
            await session.execute(_TRIVIAL)

    async def CreateJournalEntry(
        self, request: pb.CreateJournalEntryRequest, _context: Any
    ) -> pb.CreateJournalEntryResponse:
        await self._transaction()
        return pb.CreateJournalEntryResponse(journal_entry=_echo(request))

    async def BatchCreateJournalEntries(
        self, request: pb.BatchCreateJournalEntriesRequest, _context: Any
    ) -> pb.BatchCreateJournalEntriesResponse:
        await self._transaction()
        return pb.BatchCreateJournalEntriesResponse(
            journal_entries=[_echo(item) for item in request.requests]
        )


def _echo(request: pb.CreateJournalEntryRequest) -> res.JournalEntry:
    entry = res.JournalEntry()
    entry.CopyFrom(request.journal_entry)
    entry.name = f"{request.parent}/entries/{request.request_id}"
    return entry


async def serve() -> None:
    settings = LedgerSettings()
    configure_logging(SERVICE, settings.log_level)
    telemetry = configure_telemetry(SERVICE, settings.telemetry)  # as the ledger does
    database = Database.from_settings(load_database_settings(SERVICE), application_name="floor")
    registration = ServiceRegistration(
        descriptor=pb.DESCRIPTOR.services_by_name["LedgerService"],
        # The generated base answers UNIMPLEMENTED for every other RPC (abstract to mypy only).
        servicer=FloorApi(database),  # type: ignore[abstract]
        add_to_server=rpc.add_LedgerServiceServicer_to_server,
    )
    server = await start_server(settings, [registration], error_domain=ERROR_DOMAIN)
    server.on_drain.append(database.dispose)
    server.on_drain.append(lambda: asyncio.to_thread(telemetry.shutdown))
    await server.serve_until_signalled()


if __name__ == "__main__":
    asyncio.run(serve())
