"""The floor: payments' hop graph with no business at all, each hop its own process.

    client -> payments-shaped gRPC server -> PSP-shaped HTTP server (aiohttp, as the sandbox)
                                          -> ledger-shaped gRPC server (grpc.aio, as the ledger)

Per AuthorizePayment: one PSP POST (/v1/authorizations) and one ledger CreateHold; per
CapturePayment: one PSP POST (/v1/authorizations/{id}/captures) and one ledger PostHold —
the calls the real service makes per authorize/capture pair. Requests and responses are the
real protobuf messages (parsed and serialized) and JSON bodies; there is no database, no
auth, no validation, no idempotency, no events. Its rate over the echo rate is the most this
architecture (Python gRPC + HTTP hops) allows at zero business cost.

    python -m bench.payments.floor psp --port N
    python -m bench.payments.floor ledger --port N
    python -m bench.payments.floor payments --port N --psp 127.0.0.1:P --ledger 127.0.0.1:L
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import httpx
from aiohttp import web

from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money

LEDGER = "commerce.ledger.v1.LedgerService"
PAYMENTS = "commerce.payments.v1.PaymentsService"


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


# -- PSP-shaped: the sandbox's routes, no books ------------------------------------------------


async def _psp_authorize(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response(
        {"id": f"auth_{secrets.token_hex(8)}", "status": "authorized",
         "amount_minor": body["amount_minor"], "currency": body["currency"]}
    )  # fmt: skip


async def _psp_capture(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response(
        {"id": request.match_info["id"], "status": "captured",
         "amount_minor": body["amount_minor"], "currency": "USD"}
    )  # fmt: skip


async def serve_psp(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/authorizations", _psp_authorize)
    app.router.add_post("/v1/authorizations/{id}/captures", _psp_capture)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await _until_signalled()
    finally:
        await runner.cleanup()


# -- ledger-shaped -----------------------------------------------------------------------------


def _unary(
    behaviour: Callable[[Any], Awaitable[Any]], request_type: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    async def handle(request: Any, _context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behaviour(request)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


async def _serve_grpc(port: int, service: str, handlers: dict[str, Any]) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await _until_signalled()
    finally:
        await server.stop(0)


async def serve_ledger(port: int) -> None:
    async def create_hold(request: lpb.CreateHoldRequest) -> lpb.CreateHoldResponse:
        return lpb.CreateHoldResponse(hold=lres.Hold(name=f"{request.parent}/holds/h"))

    async def post_hold(request: lpb.PostHoldRequest) -> lpb.PostHoldResponse:
        return lpb.PostHoldResponse(hold=lres.Hold(name=request.name))

    await _serve_grpc(
        port,
        LEDGER,
        {
            "CreateHold": _unary(create_hold, lpb.CreateHoldRequest),
            "PostHold": _unary(post_hold, lpb.PostHoldRequest),
        },
    )


# -- payments-shaped ---------------------------------------------------------------------------


async def serve_payments(port: int, psp: str, ledger: str) -> None:
    async with (
        httpx.AsyncClient(base_url=f"http://{psp}") as http,
        grpc.aio.insecure_channel(ledger) as channel,
    ):
        create_hold = channel.unary_unary(
            f"/{LEDGER}/CreateHold",
            request_serializer=lpb.CreateHoldRequest.SerializeToString,
            response_deserializer=lpb.CreateHoldResponse.FromString,
        )
        post_hold = channel.unary_unary(
            f"/{LEDGER}/PostHold",
            request_serializer=lpb.PostHoldRequest.SerializeToString,
            response_deserializer=lpb.PostHoldResponse.FromString,
        )

        async def authorize(request: pb.AuthorizePaymentRequest) -> pb.AuthorizePaymentResponse:
            reply = await http.post(
                "/v1/authorizations",
                json={"amount_minor": request.amount.amount_minor,
                      "currency": request.amount.currency_code,
                      "payment_method": request.payment_method.token, "capture": False},
                headers={"Idempotency-Key": request.request_id},
            )  # fmt: skip
            reference = json.loads(reply.content)["id"]
            await create_hold(
                lpb.CreateHoldRequest(
                    parent=request.parent,
                    hold_id=reference,
                    hold=lres.Hold(
                        debit_account=f"{request.parent}/accounts/payments-psp-clearing-usd",
                        credit_account=f"{request.parent}/accounts/payments-customer-funds-usd",
                        amount=request.amount,
                        description=f"authorization of payment {reference}",
                    ),
                    request_id=request.request_id,
                ),
                timeout=5,
            )
            return pb.AuthorizePaymentResponse(
                payment=res.Payment(
                    name=f"{request.parent}/payments/{reference}",
                    state=res.PAYMENT_STATE_AUTHORIZED,
                    amount=request.amount,
                )
            )

        async def capture(request: pb.CapturePaymentRequest) -> pb.CapturePaymentResponse:
            reference = request.name.rsplit("/", 1)[-1]
            reply = await http.post(
                f"/v1/authorizations/{reference}/captures",
                json={"amount_minor": 1999, "final": True},
                headers={"Idempotency-Key": request.request_id},
            )
            captured = json.loads(reply.content)
            await post_hold(
                lpb.PostHoldRequest(
                    name=f"{request.name}/holds/h",
                    amount=Money(currency_code="USD", amount_minor=captured["amount_minor"]),
                    description=f"capture of payment {reference}",
                    request_id=request.request_id,
                ),
                timeout=5,
            )
            return pb.CapturePaymentResponse(
                payment=res.Payment(
                    name=request.name,
                    state=res.PAYMENT_STATE_CAPTURED,
                    amount=Money(currency_code="USD", amount_minor=captured["amount_minor"]),
                )
            )

        await _serve_grpc(
            port,
            PAYMENTS,
            {
                "AuthorizePayment": _unary(authorize, pb.AuthorizePaymentRequest),
                "CapturePayment": _unary(capture, pb.CapturePaymentRequest),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.payments.floor", description=__doc__)
    parser.add_argument("role", choices=("psp", "ledger", "payments"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--psp", default="")
    parser.add_argument("--ledger", default="")
    args = parser.parse_args()
    serve: Coroutine[Any, Any, None]
    if args.role == "psp":
        serve = serve_psp(args.port)
    elif args.role == "ledger":
        serve = serve_ledger(args.port)
    else:
        serve = serve_payments(args.port, args.psp, args.ledger)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve)


if __name__ == "__main__":
    main()
