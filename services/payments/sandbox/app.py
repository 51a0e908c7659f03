"""The sandbox's HTTP routes: payments API, settlement reports and the admin knobs."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from services.chassis.card_data import looks_like_card_number
from services.payments.domain.methods import is_valid_token
from services.payments.sandbox.books import Books, SandboxError
from services.payments.sandbox.config import ConfigError, SandboxConfig, is_loopback
from services.payments.sandbox.idempotency import IdempotencyStore, StoredAnswer, fingerprint
from services.payments.sandbox.notifier import Notifier
from services.payments.sandbox.settlement import render_csv
from services.payments.sandbox.tokens import TokenBehaviour, behaviour_of

INT64_MAX = 2**63 - 1
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DESCRIPTION_MAX = 1024

Outcome = tuple[int, dict[str, Any], Callable[[], Awaitable[None]] | None]
"""HTTP status, JSON body, and what to await (unlocked) before answering."""


@dataclass(slots=True)
class SandboxState:
    config: SandboxConfig
    notifier: Notifier
    books: Books = field(default_factory=Books)
    idempotency: IdempotencyStore = field(default_factory=IdempotencyStore)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: random.Random = field(default_factory=random.Random)


STATE = web.AppKey("sandbox_state", SandboxState)


def create_app(state: SandboxState) -> web.Application:
    app = web.Application(middlewares=[_errors, _loopback_only, _refuse_card_data, _knobs])
    app[STATE] = state
    app.router.add_post("/v1/authorizations", authorize)
    app.router.add_get("/v1/authorizations", find_authorizations)
    app.router.add_get("/v1/authorizations/{id}", get_authorization)
    app.router.add_post("/v1/authorizations/{id}/captures", capture)
    app.router.add_post("/v1/authorizations/{id}/void", void)
    app.router.add_post("/v1/authorizations/{id}/refunds", refund)
    app.router.add_get("/v1/settlements", settlements)
    app.router.add_get("/admin/config", get_config)
    app.router.add_put("/admin/config", put_config)
    app.router.add_get("/healthz", healthz)
    return app


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        SandboxError(status, "invalid_request", code, message).body(), status=status
    )


# -- middlewares --------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SandboxError as error:
        return web.json_response(error.body(), status=error.status)


@web.middleware
async def _loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_loopback(request.remote or ""):
        return _error(403, "loopback_only", "the sandbox answers loopback clients only")
    return await handler(request)


@web.middleware
async def _refuse_card_data(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Checked on the raw bytes, before any parsing: a PAN is refused wherever it hides, and
    # never echoed back or logged.
    raw = (await request.read()).decode("utf-8", errors="replace")
    if looks_like_card_number(raw) or looks_like_card_number(request.query_string):
        return _error(400, "card_data_refused", "card numbers are refused; send a pm_ token")
    return await handler(request)


@web.middleware
async def _knobs(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        config = request.app[STATE].config
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.error_rate and request.app[STATE].rng.random() < config.error_rate:
            raise SandboxError(503, "api_error", "unavailable", "injected error; nothing done")
    return await handler(request)


# -- idempotent POSTs ---------------------------------------------------------------------


async def _keyed(
    request: web.Request, run: Callable[[dict[str, Any], str], Awaitable[Outcome]]
) -> web.Response:
    """Run a mutating call once per Idempotency-Key; replay or refuse repeats."""
    key = request.headers.get("Idempotency-Key", "")
    if not 1 <= len(key) <= 255:  # noqa: PLR2004 - Stripe's key length limit
        return _error(400, "idempotency_key_missing", "an Idempotency-Key header is required")
    raw = await request.read()
    state = request.app[STATE]
    scoped = f"{request.method} {request.path} {key}"
    printed = fingerprint(request.method, request.path, raw)
    async with state.idempotency.lock(scoped):
        stored = state.idempotency.get(scoped)
        if stored is not None:
            if stored.fingerprint != printed:
                return _error(409, "idempotency_key_reused", "key used with another request")
            return web.Response(
                body=stored.body,
                status=stored.status,
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            status, payload, after = await run(_json_body(raw), key)
        except SandboxError as error:
            if error.status >= 500:  # noqa: PLR2004 - 5xx: nothing happened, nothing stored
                raise
            status, payload, after = error.status, error.body(), None
        body = json.dumps(payload).encode()
        state.idempotency.put(scoped, StoredAnswer(printed, status, body))
    if after is not None:
        await after()
    return web.Response(body=body, status=status, content_type="application/json")


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise SandboxError(400, "invalid_request", "invalid_json", "body is not JSON") from error
    if not isinstance(body, dict):
        raise SandboxError(400, "invalid_request", "invalid_json", "body must be an object")
    return body


def _amount(body: dict[str, Any], *, required: bool) -> int | None:
    value = body.get("amount_minor")
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= INT64_MAX:
        raise SandboxError(400, "invalid_request", "invalid_amount", "amount_minor: 1..2^63-1")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise SandboxError(400, "invalid_request", "invalid_flag", f"{name} must be a boolean")
    return value


# -- payments API -------------------------------------------------------------------------


async def authorize(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def run(body: dict[str, Any], key: str) -> Outcome:
        amount = _amount(body, required=True)
        assert amount is not None
        currency, token = body.get("currency"), body.get("payment_method")
        description = body.get("description", "")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise SandboxError(400, "invalid_request", "invalid_currency", "ISO 4217 code")
        if not isinstance(token, str) or not is_valid_token(token):
            raise SandboxError(400, "invalid_request", "invalid_payment_method", "pm_ token")
        if not isinstance(description, str) or len(description) > _DESCRIPTION_MAX:
            raise SandboxError(400, "invalid_request", "invalid_description", "1024 chars max")
        behaviour = behaviour_of(token)
        first_try = state.idempotency.count_attempt(key) == 1
        if behaviour is TokenBehaviour.UNAVAILABLE or (
            behaviour is TokenBehaviour.UNAVAILABLE_ONCE and first_try
        ):
            raise SandboxError(503, "api_error", "unavailable", "try again; nothing done")
        decline = {
            TokenBehaviour.DECLINE: "do_not_honor",
            TokenBehaviour.INSUFFICIENT_FUNDS: "insufficient_funds",
        }.get(behaviour, "")
        auth = state.books.authorize(
            amount_minor=amount,
            currency=currency,
            idempotency_key=key,
            capture=_flag(body, "capture"),
            description=description,
            decline_code=decline,
            now=state.clock(),
        )
        state.notifier.publish(f"authorization.{auth.status}", auth.as_json())
        if decline:
            error = SandboxError(402, "card_declined", decline, "the issuer declined")
            return 402, {**error.body(), "authorization": auth.as_json()}, None
        slow = behaviour is TokenBehaviour.SLOW
        return 201, auth.as_json(), (_sleeper(state.config.timeout_seconds) if slow else None)

    return await _keyed(request, run)


def _sleeper(seconds: float) -> Callable[[], Awaitable[None]]:
    async def sleep() -> None:
        await asyncio.sleep(seconds)

    return sleep


async def capture(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def run(body: dict[str, Any], _key: str) -> Outcome:
        auth = state.books.capture(
            request.match_info["id"],
            _amount(body, required=False),
            final=_flag(body, "final"),
            now=state.clock(),
        )
        state.notifier.publish("authorization.captured", auth.as_json())
        return 200, auth.as_json(), None

    return await _keyed(request, run)


async def void(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def run(_body: dict[str, Any], _key: str) -> Outcome:
        auth = state.books.void(request.match_info["id"])
        state.notifier.publish("authorization.voided", auth.as_json())
        return 200, auth.as_json(), None

    return await _keyed(request, run)


async def refund(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def run(body: dict[str, Any], _key: str) -> Outcome:
        created = state.books.refund(
            request.match_info["id"], _amount(body, required=False), state.clock()
        )
        state.notifier.publish("refund.succeeded", created.as_json())
        return 201, created.as_json(), None

    return await _keyed(request, run)


async def get_authorization(request: web.Request) -> web.Response:
    auth = request.app[STATE].books.authorization(request.match_info["id"])
    return web.json_response(auth.as_json())


async def find_authorizations(request: web.Request) -> web.Response:
    key = request.query.get("idempotency_key", "")
    if not key:
        return _error(400, "idempotency_key_missing", "query by idempotency_key")
    found = request.app[STATE].books.by_idempotency_key(key)
    return web.json_response({"data": [a.as_json() for a in found]})


async def settlements(request: web.Request) -> web.Response:
    try:
        start = date.fromisoformat(request.query["from"])
        end = date.fromisoformat(request.query["to"])
    except (KeyError, ValueError):
        return _error(400, "invalid_period", "from and to must be YYYY-MM-DD dates")
    entries = request.app[STATE].books.settlement_between(start, end)
    return web.Response(text=render_csv(entries), content_type="text/csv")


# -- admin --------------------------------------------------------------------------------


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].config.as_json())


async def put_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.config = state.config.updated(_json_body(await request.read()))
    except ConfigError as error:
        return _error(400, "invalid_config", str(error))
    return web.json_response(state.config.as_json())


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
