"""The sandbox's HTTP protocol: idempotency, card-data refusal, knobs and signed webhooks."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiohttp import web

from services.payments.webhooks import (
    GATEWAY_SIGNATURE_HEADER,
    GATEWAY_TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    verify,
)

BODY = {"amount_minor": 1_500, "currency": "USD", "payment_method": "pm_sandbox_ok"}


async def post(http, url, body, key=None):
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    return await http.client.post(url, json=body, headers=headers)


async def test_same_key_and_body_replays_the_first_answer(http, sandbox):
    key = str(uuid.uuid4())
    first = await post(http, f"{sandbox.url}/v1/authorizations", BODY, key)
    again = await post(http, f"{sandbox.url}/v1/authorizations", BODY, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_same_key_with_another_body_is_409(http, sandbox):
    key = str(uuid.uuid4())
    await post(http, f"{sandbox.url}/v1/authorizations", BODY, key)
    changed = await post(http, f"{sandbox.url}/v1/authorizations", {**BODY, "amount_minor": 1}, key)
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"


async def test_fifty_concurrent_twins_make_exactly_one_authorization(http, sandbox):
    key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(post(http, f"{sandbox.url}/v1/authorizations", BODY, key) for _ in range(50))
    )
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert len(sandbox.state.books.by_idempotency_key(key)) == 1


async def test_a_post_without_idempotency_key_is_refused(http, sandbox):
    response = await http.client.post(f"{sandbox.url}/v1/authorizations", json=BODY)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "payment_method": "4111111111111111"},
        {**BODY, "description": "4111-1111-1111-1111"},
        {**BODY, "note": {"deep": ["x", "5500 0000 0000 0004"]}},
    ],
)
async def test_anything_that_looks_like_a_card_number_is_refused_unechoed(http, sandbox, body):
    response = await post(http, f"{sandbox.url}/v1/authorizations", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_refused"
    assert "1111" not in response.text
    assert "0004" not in response.text
    assert sandbox.state.books.authorizations == {}


async def test_a_card_number_in_the_query_is_refused(http, sandbox):
    response = await http.client.get(
        f"{sandbox.url}/v1/authorizations", params={"idempotency_key": "4111111111111111"}
    )
    assert response.status_code == 400


async def test_retry_once_token_answers_503_first_then_approves(http, sandbox):
    key = str(uuid.uuid4())
    body = {**BODY, "payment_method": "pm_sandbox_retry_once"}
    first = await post(http, f"{sandbox.url}/v1/authorizations", body, key)
    second = await post(http, f"{sandbox.url}/v1/authorizations", body, key)
    assert (first.status_code, second.status_code) == (503, 201)
    assert len(sandbox.state.books.by_idempotency_key(key)) == 1


async def test_5xx_token_always_answers_503_and_records_nothing(http, sandbox):
    body = {**BODY, "payment_method": "pm_sandbox_5xx"}
    key = str(uuid.uuid4())
    for _ in range(2):
        response = await post(http, f"{sandbox.url}/v1/authorizations", body, key)
        assert response.status_code == 503
    assert sandbox.state.books.authorizations == {}


async def test_admin_knobs_add_latency_and_errors(http, sandbox):
    response = await http.client.put(f"{sandbox.url}/admin/config", json={"latency_ms": 150})
    assert response.json()["latency_ms"] == 150
    started = time.monotonic()
    await http.client.get(f"{sandbox.url}/v1/authorizations", params={"idempotency_key": "x"})
    assert time.monotonic() - started >= 0.15
    await http.client.put(f"{sandbox.url}/admin/config", json={"latency_ms": 0, "error_rate": 1})
    failing = await post(http, f"{sandbox.url}/v1/authorizations", BODY)
    assert failing.status_code == 503
    assert sandbox.state.books.authorizations == {}


async def test_admin_refuses_bad_knobs(http, sandbox):
    response = await http.client.put(
        f"{sandbox.url}/admin/config", json={"webhook_url": "http://10.0.0.1/hook"}
    )
    assert response.status_code == 400
    assert (await http.client.get(f"{sandbox.url}/admin/config")).json()["webhook_url"] == ""


async def test_settlement_period_must_be_dates(http, sandbox):
    response = await http.client.get(f"{sandbox.url}/v1/settlements", params={"from": "x"})
    assert response.status_code == 400
    today = datetime.now(UTC).date().isoformat()
    report = await http.client.get(
        f"{sandbox.url}/v1/settlements", params={"from": today, "to": today}
    )
    assert report.headers["content-type"].startswith("text/csv")


@pytest.fixture
async def webhook_inbox():
    """A loopback HTTP endpoint that records the webhooks it receives."""
    received: list[tuple[str, bytes]] = []
    gateway_headers: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        received.append((request.headers.get(SIGNATURE_HEADER, ""), await request.read()))
        gateway_headers.append(
            (
                request.headers.get(GATEWAY_SIGNATURE_HEADER, ""),
                request.headers.get(GATEWAY_TIMESTAMP_HEADER, ""),
            )
        )
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hooks", received, arrived, gateway_headers
    await runner.cleanup()


async def test_state_changes_send_webhooks_signed_over_timestamp_and_body(
    http, sandbox_factory, webhook_inbox, webhook_secret
):
    url, received, arrived, gateway_headers = webhook_inbox
    sandbox = await sandbox_factory(webhook_url=url)
    created = await post(http, f"{sandbox.url}/v1/authorizations", BODY)
    await asyncio.wait_for(arrived.wait(), timeout=5)
    header, body = received[0]
    verify(webhook_secret, body, header, now=time.time())
    # The REST gateway's neutral headers (services/gateway/webhook.go) carry the same
    # signature and its timestamp, so the webhook also arrives through the gateway.
    assert gateway_headers[0] == (header, header.split(",")[0].removeprefix("t="))
    event = json.loads(body)
    assert event["type"] == "authorization.authorized"
    assert event["data"]["id"] == created.json()["id"]
    assert event["id"].startswith("evt_")
