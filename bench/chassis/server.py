"""One bench server process: the ledger's CreateJournalEntry answered by an echo servicer
(the request's entry comes back), served either bare or through the full chassis.

`python -m bench.chassis.server {bare|chassis} PORT_FILE` binds port 0 on 127.0.0.1, writes
the port to PORT_FILE, and serves until SIGTERM. The chassis variant verifies the RS256 JWT
whose public key is in COMMERCE_BENCH_JWT_PUBLIC_KEY (a PEM file), authorizes, validates the
request (protovalidate plan + card-data guard), binds the request context, records RED metrics
(a Prometheus reader) and traces every call (sampled, no exporter).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from commerce.ledger.v1 import ledger_service_pb2 as ledger_pb
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.server import ServiceRegistration, start_server
from services.chassis.telemetry import TelemetrySettings, build

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
else:
    Context = grpc.aio.ServicerContext

ISSUER = AUDIENCE = "commerce-mesh"


async def create_journal_entry(
    request: ledger_pb.CreateJournalEntryRequest, _context: Context
) -> ledger_pb.CreateJournalEntryResponse:
    """The posted entry as it came, named: no storage, only what gRPC and the chassis do."""
    response = ledger_pb.CreateJournalEntryResponse()
    response.journal_entry.CopyFrom(request.journal_entry)
    response.journal_entry.name = f"{request.parent}/entries/{request.entry_id or 'e1'}"
    return response


def add_echo_to_server(_servicer: object, server: grpc.aio.Server) -> None:
    """Serve CreateJournalEntry of commerce.ledger.v1.LedgerService (the other methods are
    UNIMPLEMENTED), as the generated `add_LedgerServiceServicer_to_server` would."""
    handler = grpc.method_handlers_generic_handler(
        "commerce.ledger.v1.LedgerService",
        {
            "CreateJournalEntry": grpc.unary_unary_rpc_method_handler(
                create_journal_entry,
                request_deserializer=ledger_pb.CreateJournalEntryRequest.FromString,
                response_serializer=ledger_pb.CreateJournalEntryResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


async def _bare(port_file: Path) -> None:
    server = grpc.aio.server()
    add_echo_to_server(None, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await _serve(port_file, port)
    await server.stop(1)


async def _chassis(port_file: Path) -> None:
    key_file = Path(os.environ["COMMERCE_BENCH_JWT_PUBLIC_KEY"])
    telemetry = build("bench-chassis", TelemetrySettings(metrics_port=0, sample_ratio=1.0))
    settings = ServerSettings(
        auth=AuthSettings(
            key_file=key_file, algorithms=["RS256"], issuer=ISSUER, audience=AUDIENCE
        ),
        reflection=False,
    )
    registration = ServiceRegistration(
        ledger_pb.DESCRIPTOR.services_by_name["LedgerService"],
        None,
        add_echo_to_server,
    )
    running = await start_server(
        settings, [registration], error_domain="bench.commerce-mesh", telemetry=telemetry
    )
    await _serve(port_file, running.port)
    await running.stop()
    telemetry.shutdown()


async def _serve(port_file: Path, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.to_thread(port_file.write_text, str(port))
    await stop.wait()


def main() -> None:
    """Serve one variant until signalled."""
    variant, port_file = sys.argv[1], Path(sys.argv[2])
    run = {"bare": _bare, "chassis": _chassis}[variant]
    asyncio.run(run(port_file))


if __name__ == "__main__":
    main()
