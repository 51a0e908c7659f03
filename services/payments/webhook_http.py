"""The HTTP endpoint PSPs post webhooks to: `POST /v1/webhooks/{psp}`, the raw body and the
signature header handed to the same use case as the HandlePspWebhook RPC."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from aiohttp import web

from services.chassis.errors import DomainError, ErrorKind
from services.payments.service import PaymentsService
from services.payments.webhooks import GATEWAY_SIGNATURE_HEADER, SIGNATURE_HEADER

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
SIGNATURE_HEADERS = (SIGNATURE_HEADER, "Stripe-Signature", GATEWAY_SIGNATURE_HEADER)
_STATUS = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.ABORTED: 409,
    ErrorKind.FAILED_PRECONDITION: 409,
    ErrorKind.UNAVAILABLE: 503,
}


@dataclass(slots=True)
class RunningWebhookEndpoint:
    url: str
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()


def create_app(service: PaymentsService) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        psp = request.match_info["psp"]
        body = await request.read()
        signature = next(
            (request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers), ""
        )
        if not body or not signature:
            return _error(400, "WEBHOOK_PAYLOAD_INVALID")
        try:
            answer = await service.handle_webhook(psp, body, signature)
        except DomainError as error:
            log.info("webhook refused: %s %s", error.kind.value, error.reason)
            return _error(_STATUS.get(error.kind, 500), error.reason)
        return web.json_response(
            {
                "event_id": answer.event_id,
                "duplicate": answer.duplicate,
                "ignored": answer.ignored,
            }
        )

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(r"/v1/webhooks/{psp:[a-z][a-z0-9_-]{1,31}}", receive)
    return app


def _error(status: int, reason: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"error": reason}), content_type="application/json"
    )


async def start_webhook_endpoint(
    service: PaymentsService, *, host: str, port: int
) -> RunningWebhookEndpoint:
    runner = web.AppRunner(create_app(service), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningWebhookEndpoint(f"http://{bound_host}:{bound_port}", runner)
