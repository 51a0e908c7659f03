"""A shopper's checkout through the REST facade, as a frontend does it, and the trace it leaves.

Used by `make demo` (services/devrun.py) and by the end-to-end tests (tests/e2e), so the demo
shows exactly what the tests check: routing set up by an admin, a checkout created, quoted
and placed with an `Idempotency-Key`, the order polled until done, its invoice found and
downloaded as a PDF, the ledger's balances, and the one trace that spans every hop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

PSP = "sandbox"
SERVICES = ("gateway", "checkout", "payments", "ledger", "invoicing")


class JourneyError(RuntimeError):
    """A step did not answer as a frontend expects; the message says which and why."""


@dataclass(frozen=True)
class Balance:
    """An account's posted balance in its normal direction, and debits minus credits (which
    sum to zero over all accounts of a currency)."""

    currency: str
    posted: int
    net_debit: int

    def __str__(self) -> str:
        return f"{self.currency} {self.posted}"


@dataclass
class Journey:
    """What one checkout left behind, by resource name."""

    tenant: str
    trace_id: str
    checkout: dict[str, Any] = field(default_factory=dict)
    order: dict[str, Any] = field(default_factory=dict)
    replayed_order: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    invoice: dict[str, Any] = field(default_factory=dict)
    invoice_pdf: bytes = b""
    balances: dict[str, Balance] = field(default_factory=dict)


def _ok(reply: httpx.Response, step: str) -> dict[str, Any]:
    if reply.status_code != httpx.codes.OK:
        raise JourneyError(f"{step}: HTTP {reply.status_code} {reply.text[:500]}")
    body: dict[str, Any] = reply.json()
    return body


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def route_to_sandbox(rest: httpx.AsyncClient, tenant: str) -> None:
    """An admin's one-time setup: route the tenant's payments to the PSP sandbox."""
    name = f"tenants/{tenant}/routingConfig"
    current = _ok(await rest.get(f"/v1/{name}"), "get routing config")["routingConfig"]
    body = {"name": name, "defaultPsps": [PSP], "etag": current.get("etag", "")}
    # An explicit mask: grpc-gateway would otherwise infer one from every field in the body,
    # name and etag included, which are not fields one updates.
    _ok(
        await rest.patch(
            f"/v1/{name}", json=body, params={"updateMask": "default_psps"}, headers=_key()
        ),
        "route to the sandbox",
    )


async def place_checkout(
    rest: httpx.AsyncClient, tenant: str, *, wait_seconds: float = 60.0
) -> Journey:
    """Create, quote and place a checkout; poll the order; fetch its invoice and balances.

    The placing call carries a fresh W3C `traceparent`, so the whole checkout is one trace
    whose id the journey returns.
    """
    trace_id = secrets.token_hex(16)
    journey = Journey(tenant=tenant, trace_id=trace_id)
    draft = {
        "currencyCode": "EUR",
        "customer": {"customerId": "c-demo", "email": "ada@example.com", "displayName": "Ada"},
        "shippingAddress": {
            "regionCode": "DE",
            "locality": "Berlin",
            "postalCode": "10115",
            "addressLines": ["Invalidenstrasse 117"],
            "recipient": "Ada Lovelace",
        },
        "lines": [
            {"sku": "AE-CARDS-500", "quantity": 3, "description": "Punch cards",
             "unitPrice": {"currencyCode": "EUR", "amountMinor": "1999"}},
            {"sku": "BOOK-NOTES", "quantity": 1, "description": "Notes (hardcover)",
             "unitPrice": {"currencyCode": "EUR", "amountMinor": "2500"}},
        ],
    }  # fmt: skip
    created = _ok(
        await rest.post(f"/v1/tenants/{tenant}/checkouts", json=draft, headers=_key()),
        "create checkout",
    )["checkout"]
    quoted = _ok(
        await rest.post(
            f"/v1/{created['name']}:quote", json={"etag": created["etag"]}, headers=_key()
        ),
        "quote",
    )["checkout"]
    journey.checkout = quoted
    place = {
        "etag": quoted["etag"],
        "quoteId": quoted["quote"]["quoteId"],
        "paymentMethodToken": "pm_sandbox_ok",
    }
    key = _key()
    traced = {**key, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    journey.order = _ok(
        await rest.post(f"/v1/{quoted['name']}:placeOrder", json=place, headers=traced),
        "place order",
    )["order"]
    # A double click: the same Idempotency-Key must give the same order, not a second one.
    again = _ok(
        await rest.post(f"/v1/{quoted['name']}:placeOrder", json=place, headers=key),
        "place order again",
    )["order"]
    journey.replayed_order = again["name"]
    journey.status = await _until(
        lambda: rest.get(f"/v1/{journey.order['name']}:status"),
        lambda body: bool(body.get("done")),
        "order status done",
        wait_seconds,
    )
    invoices = await _until(
        lambda: rest.get(
            f"/v1/tenants/{tenant}/invoices",
            params={"filter": f'order = "{journey.order["name"]}"'},
        ),
        lambda body: bool(body.get("invoices")),
        "the order's invoice",
        wait_seconds,
    )
    journey.invoice = invoices["invoices"][0]
    pdf = await rest.get(
        f"/v1/{journey.invoice['name']}:render", params={"format": "RENDER_FORMAT_PDF"}
    )
    if pdf.status_code != httpx.codes.OK or not pdf.content.startswith(b"%PDF"):
        raise JourneyError(f"download invoice: HTTP {pdf.status_code} {pdf.text[:200]}")
    journey.invoice_pdf = pdf.content
    # Invoicing recognises the sale in the ledger shortly after issuing (its poster posts
    # revenue + tax against the receivable, then settles the receivable from the captured
    # funds, one journal entry after the other): wait until all of it is there. Balances are
    # read one account at a time, so a read between the poster's entries sees half of it.
    # Two equal reads in a row then make one consistent picture.
    total = int(quoted["quote"]["total"]["amountMinor"])
    deadline = time.monotonic() + wait_seconds
    previous: dict[str, Balance] = {}
    while True:
        journey.balances = await balances(rest, tenant)
        settled = journey.balances == previous and _sale_recognised(journey.balances, total)
        if settled or time.monotonic() > deadline:
            return journey
        previous = journey.balances
        await asyncio.sleep(0.25)


def _sale_recognised(found: dict[str, Balance], total: int) -> bool:
    """Revenue and tax add up to the sale and the receivable is settled."""
    recognised = sum(
        b.posted
        for name, b in found.items()
        if name.startswith(("invoicing-revenue-", "invoicing-tax-payable-"))
    )
    receivable = [b.posted for name, b in found.items() if name.startswith("invoicing-receivable-")]
    return recognised == total and receivable != [] and not any(receivable)


async def balances(rest: httpx.AsyncClient, tenant: str) -> dict[str, Balance]:
    """Every ledger account of the tenant with its posted balance."""
    accounts = _ok(
        await rest.get(f"/v1/tenants/{tenant}/accounts", params={"pageSize": 100}), "accounts"
    ).get("accounts", [])
    found: dict[str, Balance] = {}
    for account in accounts:
        balance = _ok(await rest.get(f"/v1/{account['name']}/balance"), "balance")["balance"]
        found[account["name"].rsplit("/", 1)[-1]] = Balance(
            currency=account["currencyCode"],
            posted=int(balance.get("posted", {}).get("amountMinor", "0")),
            net_debit=int(balance.get("debitsPosted", {}).get("amountMinor", "0"))
            - int(balance.get("creditsPosted", {}).get("amountMinor", "0")),
        )
    return found


async def trace_services(
    viewer: str, trace_id: str, expected: Iterable[str] = SERVICES, *, wait_seconds: float = 30.0
) -> list[dict[str, Any]]:
    """The trace's spans from the viewer (Zipkin API), once every expected service and both
    Pub/Sub hops (a producer and a consumer span) are in it."""
    wanted = set(expected)

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {s.get("localEndpoint", {}).get("serviceName") for s in spans}
        kinds = {s.get("kind") for s in spans}
        # Processes export in batches: wait until every span's parent has arrived too.
        return wanted <= names and {"PRODUCER", "CONSUMER"} <= kinds and len(roots(spans)) == 1

    spans: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    async with httpx.AsyncClient(base_url=viewer, timeout=5) as client:
        while time.monotonic() < deadline:
            reply = await client.get(f"/api/v2/trace/{trace_id}")
            if reply.status_code == httpx.codes.OK:
                spans = reply.json()
                if complete(spans):
                    return spans
            await asyncio.sleep(0.5)
    names = sorted({s.get("localEndpoint", {}).get("serviceName", "?") for s in spans})
    orphans = [(s.get("localEndpoint", {}).get("serviceName"), s.get("name")) for s in roots(spans)]
    raise JourneyError(
        f"trace {trace_id}: {len(spans)} spans from {names}; want {sorted(wanted)}, a Pub/Sub "
        f"producer and consumer, and one root; spans without their parent: {orphans}"
    )


def roots(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans whose parent is not in the trace: the gateway's alone, for a whole trace (its
    parent is the caller's span, which the caller does not export)."""
    ids = {s["id"] for s in spans}
    return [s for s in spans if s.get("parentId") not in ids]


async def _until(
    call: Any, done: Any, what: str, wait_seconds: float, interval: float = 0.25
) -> dict[str, Any]:
    deadline = time.monotonic() + wait_seconds
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = _ok(await call(), what)
        if done(body):
            return body
        await asyncio.sleep(interval)
    raise JourneyError(f"{what}: not there after {wait_seconds}s (last answer {body})")
