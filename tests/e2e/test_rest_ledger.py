"""The ledger through the REST facade: proto3 JSON in and out, Idempotency-Key replay, and the
google.rpc.Status error body with its ErrorInfo."""

from __future__ import annotations

import uuid

import httpx

from services.localmesh import LocalMesh
from tests.e2e.support import running

ASSET = "ACCOUNT_TYPE_ASSET"


def error_reason(reply: httpx.Response) -> str:
    """The ErrorInfo reason of a google.rpc.Status JSON body."""
    infos = [d for d in reply.json()["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert len(infos) == 1, reply.text
    return str(infos[0]["reason"])


async def open_account(rest: httpx.AsyncClient, tenant: str, code: str, kind: str) -> str:
    reply = await rest.post(
        f"/v1/tenants/{tenant}/accounts",
        params={"accountId": code},
        json={"code": code, "displayName": code, "currencyCode": "EUR", "type": kind},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert reply.status_code == httpx.codes.OK, reply.text
    return str(reply.json()["account"]["name"])


async def test_an_entry_posted_over_rest_moves_both_balances_once(
    mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str
) -> None:
    running(mesh, "ledger")
    cash = await open_account(rest, tenant, "cash", ASSET)
    sales = await open_account(rest, tenant, "sales", "ACCOUNT_TYPE_REVENUE")
    entry = {
        "description": "a sale",
        "postings": [
            {"account": cash, "amount": {"currencyCode": "EUR", "amountMinor": "1250"}},
            {"account": sales, "amount": {"currencyCode": "EUR", "amountMinor": "-1250"}},
        ],
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await rest.post(f"/v1/tenants/{tenant}/entries", json=entry, headers=key)
    assert first.status_code == httpx.codes.OK, first.text
    replay = await rest.post(f"/v1/tenants/{tenant}/entries", json=entry, headers=key)
    assert replay.status_code == httpx.codes.OK, replay.text
    assert replay.json() == first.json()  # the first answer again, not a second entry

    balance = (await rest.get(f"/v1/{cash}/balance")).json()["balance"]
    assert balance["posted"] == {"currencyCode": "EUR", "amountMinor": "1250"}  # int64 → string

    changed = {**entry, "description": "another sale"}
    reused = await rest.post(f"/v1/tenants/{tenant}/entries", json=changed, headers=key)
    assert reused.status_code == httpx.codes.CONFLICT, reused.text
    assert error_reason(reused) == "IDEMPOTENCY_KEY_REUSED"
    after = (await rest.get(f"/v1/{cash}/balance")).json()["balance"]
    assert after["posted"]["amountMinor"] == "1250"


async def test_bad_input_gets_a_status_body_naming_the_field(
    mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str
) -> None:
    running(mesh, "ledger")
    reply = await rest.post(
        f"/v1/tenants/{tenant}/accounts",
        json={
            "code": "x",
            "displayName": "x",
            "currencyCode": "euro",
            "type": "ACCOUNT_TYPE_ASSET",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert reply.status_code == httpx.codes.BAD_REQUEST, reply.text
    assert error_reason(reply) == "VALIDATION_FAILED"
    fields = [
        v["field"]
        for d in reply.json()["details"]
        if d["@type"].endswith("google.rpc.BadRequest")
        for v in d["fieldViolations"]
    ]
    assert "account.currency_code" in fields


async def test_a_mutating_call_without_an_idempotency_key_is_refused(
    mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str
) -> None:
    running(mesh, "ledger")
    reply = await rest.post(
        f"/v1/tenants/{tenant}/accounts",
        json={
            "code": "nokey",
            "displayName": "n",
            "currencyCode": "EUR",
            "type": "ACCOUNT_TYPE_ASSET",
        },
    )
    assert reply.status_code == httpx.codes.BAD_REQUEST, reply.text
    assert error_reason(reply) == "VALIDATION_FAILED"


async def test_without_a_token_or_for_another_tenant_nothing_is_served(
    mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str
) -> None:
    running(mesh, "ledger")
    anonymous = await rest.get(f"/v1/tenants/{tenant}/accounts", headers={"Authorization": ""})
    assert anonymous.status_code == httpx.codes.UNAUTHORIZED, anonymous.text
    foreign = mesh.token("someone-else", ["tenant_admin"])
    denied = await rest.get(
        f"/v1/tenants/{tenant}/accounts", headers={"Authorization": f"Bearer {foreign}"}
    )
    assert denied.status_code == httpx.codes.FORBIDDEN, denied.text
