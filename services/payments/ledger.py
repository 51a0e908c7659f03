"""Money movements of payments, recorded in the ledger through the generated ledger client.

Accounts (per tenant and currency, opened on first use; ids in lower case, e.g.
`payments-psp-clearing-usd`, ADR 0012):
- `payments-psp-clearing-<ccy>` (asset): what PSPs owe the tenant for captured payments.
- `payments-customer-funds-<ccy>` (liability): customer money received for orders.
- `payments-psp-fees-<ccy>` (expense): fees the PSPs charge.

Operations:
- authorization: hold debit psp-clearing / credit customer-funds for the authorized amount;
- capture: post the hold for the captured amount; a non-final partial capture posts the
  current hold (the ledger posts a hold once) and holds the rest under the next hold id;
- void (and the rest after a final partial capture): void the current hold;
- automatic capture: one entry debit psp-clearing / credit customer-funds;
- refund: entry debit customer-funds / credit psp-clearing;
- PSP fee: entry debit psp-fees / credit psp-clearing (reconciliation posts them).

Every ledger request id is a UUIDv5 of (tenant, payment, operation, the payments request
id), and hold ids derive from the payment, so a retry at any level is replayed by the ledger,
never applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from clients.errors import AlreadyExists as AlreadyExistsError
from clients.errors import CommerceError
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from services.chassis.errors import DomainError
from services.chassis.ids import stable_id
from services.payments import messages
from services.payments.domain import errors
from services.payments.domain.money import Money

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6b1d3c4e-2f7a-5a8e-9c1b-0d2e3f4a5b6c")
HOLD_TTL = timedelta(days=8)
"""How long the ledger keeps an authorization's hold: a day beyond the payment's authorization
lifetime (7 days), so payments releases it on expiry and the ledger's own sweeper is only the
backstop."""


@dataclass(frozen=True, slots=True)
class AccountSpec:
    role: str
    kind: int
    display: str


CLEARING = AccountSpec("psp-clearing", lres.ACCOUNT_TYPE_ASSET, "PSP clearing")
CUSTOMER_FUNDS = AccountSpec(
    "customer-funds", lres.ACCOUNT_TYPE_LIABILITY, "Customer funds received"
)
FEES = AccountSpec("psp-fees", lres.ACCOUNT_TYPE_EXPENSE, "PSP fees")
ACCOUNTS = (CLEARING, CUSTOMER_FUNDS, FEES)


def account_id(spec: AccountSpec, currency: str) -> str:
    return f"payments-{spec.role}-{currency.lower()}"


def request_id(tenant: str, *parts: str) -> str:
    """The deterministic ledger request id of one step of one payments operation."""
    return str(uuid.uuid5(NAMESPACE, "/".join((tenant, *parts))))


def hold_id(tenant: str, payment_id: str, number: int) -> str:
    """The ledger id of a payment's `number`th hold (1 at authorization). Base32, not hex: a
    hex id holds a Luhn-valid 13+ digit run about once in 250, which the ledger's card-data
    guard refuses, so that payment could never be held, captured or voided."""
    return "pay-" + stable_id(NAMESPACE, f"{tenant}/{payment_id}/hold/{number}")


class LedgerPostings:
    """Posts payments' money movements; raises LEDGER_UNAVAILABLE when the ledger cannot take
    one now, LEDGER_REJECTED when it refuses it for good (ledger_error)."""

    def __init__(self, client: LedgerClient, *, timeout: float = 5.0) -> None:
        self._client = client
        self._timeout = timeout
        self._opened: set[tuple[str, str]] = set()
        self._opening: dict[tuple[str, str], asyncio.Lock] = {}

    # -- accounts ------------------------------------------------------------------------

    async def ensure_accounts(self, tenant: str, currency: str) -> None:
        key = (tenant, currency)
        if key in self._opened:
            return
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._opened:
                return
            for spec in ACCOUNTS:
                await self._open(tenant, spec, currency)
            self._opened.add(key)

    async def _open(self, tenant: str, spec: AccountSpec, currency: str) -> None:
        ident = account_id(spec, currency)
        request = lpb.CreateAccountRequest(
            parent=f"tenants/{tenant}",
            account_id=ident,
            account=lres.Account(
                code=ident.upper(),
                display_name=f"{spec.display} ({currency})",
                currency_code=currency,
                type=spec.kind,  # type: ignore[arg-type]
                metadata={"owner": "payments"},
            ),
            request_id=request_id(tenant, "account", ident),
        )
        await self._call(
            self._client.stub.CreateAccount, request, tolerate="ACCOUNT_ALREADY_EXISTS"
        )

    def _account(self, tenant: str, spec: AccountSpec, currency: str) -> str:
        return f"tenants/{tenant}/accounts/{account_id(spec, currency)}"

    # -- movements -----------------------------------------------------------------------

    async def hold(
        self, tenant: str, payment_id: str, number: int, amount: Money, step: str
    ) -> str:
        """Hold `amount` (authorization, or the rest after a partial capture) as hold `number`."""
        await self.ensure_accounts(tenant, amount.currency)
        ident = hold_id(tenant, payment_id, number)
        request = lpb.CreateHoldRequest(
            parent=f"tenants/{tenant}",
            hold_id=ident,
            hold=lres.Hold(
                debit_account=self._account(tenant, CLEARING, amount.currency),
                credit_account=self._account(tenant, CUSTOMER_FUNDS, amount.currency),
                amount=messages.money(amount),
                ttl=Duration(seconds=int(HOLD_TTL.total_seconds())),
                description=f"authorization of payment {payment_id}",
                metadata={"payment": payment_id},
            ),
            request_id=request_id(tenant, payment_id, "hold", str(number), step),
        )
        await self._call(self._client.stub.CreateHold, request)
        return ident

    async def post_hold(
        self, tenant: str, payment_id: str, hold: str, amount: Money, step: str
    ) -> None:
        request = lpb.PostHoldRequest(
            name=f"tenants/{tenant}/holds/{hold}",
            amount=messages.money(amount),
            description=f"capture of payment {payment_id}",
            request_id=request_id(tenant, payment_id, "post", hold, step),
        )
        await self._call(self._client.stub.PostHold, request)

    async def void_hold(self, tenant: str, payment_id: str, hold: str, step: str) -> None:
        request = lpb.VoidHoldRequest(
            name=f"tenants/{tenant}/holds/{hold}",
            reason=f"payment {payment_id} voided",
            request_id=request_id(tenant, payment_id, "void", hold, step),
        )
        await self._call(self._client.stub.VoidHold, request)

    async def captured_at_once(
        self, tenant: str, payment_id: str, amount: Money, step: str
    ) -> None:
        await self._entry(
            tenant,
            payment_id,
            debit=CLEARING,
            credit=CUSTOMER_FUNDS,
            amount=amount,
            what="capture",
            step=step,
        )

    async def refunded(
        self, tenant: str, payment_id: str, refund_id: str, amount: Money, step: str
    ) -> None:
        await self._entry(
            tenant,
            payment_id,
            debit=CUSTOMER_FUNDS,
            credit=CLEARING,
            amount=amount,
            what=f"refund {refund_id}",
            step=step,
        )

    async def fee(self, tenant: str, payment_id: str, amount: Money, step: str) -> None:
        """A PSP fee on a payment (reconciliation calls this for matched settlement lines)."""
        await self._entry(
            tenant, payment_id, debit=FEES, credit=CLEARING, amount=amount, what="fee", step=step
        )

    async def _entry(
        self,
        tenant: str,
        payment_id: str,
        *,
        debit: AccountSpec,
        credit: AccountSpec,
        amount: Money,
        what: str,
        step: str,
    ) -> None:
        await self.ensure_accounts(tenant, amount.currency)
        request = lpb.CreateJournalEntryRequest(
            parent=f"tenants/{tenant}",
            journal_entry=lres.JournalEntry(
                description=f"{what} of payment {payment_id}",
                metadata={"payment": payment_id},
                postings=[
                    lres.Posting(
                        account=self._account(tenant, debit, amount.currency),
                        amount=messages.money(amount),
                    ),
                    lres.Posting(
                        account=self._account(tenant, credit, amount.currency),
                        amount=messages.money(Money(0, amount.currency)),
                    ),
                ],
            ),
            request_id=request_id(tenant, payment_id, "entry", what, step),
        )
        # A posting's sign says debit (+) or credit (-); Money holds non-negative amounts.
        request.journal_entry.postings[1].amount.amount_minor = -amount.amount_minor
        await self._call(self._client.stub.CreateJournalEntry, request)

    async def _call(self, method: Any, request: Any, *, tolerate: str = "") -> None:
        """One ledger call; `tolerate`: an ALREADY_EXISTS reason that means done already."""
        try:
            await self._client.call(method, request, timeout=self._timeout)
        except AlreadyExistsError as error:
            if tolerate and error.reason == tolerate:
                return
            raise _refused(request, error) from error
        except CommerceError as error:
            raise _refused(request, error) from error


TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        # A ledger bug or crash mid-call: nothing says a later attempt fails the same way.
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
"""Ledger answers worth retrying with the same request id; every other status (invalid
argument, failed precondition, not found, already exists, permission denied, ...) is the
ledger's final word on that request."""


def ledger_error(error: CommerceError) -> DomainError:
    """The payments error for a ledger call that failed: LEDGER_UNAVAILABLE (transient, retry
    with the same request id) or LEDGER_REJECTED (a permanent refusal, with the ledger's code
    and reason)."""
    if error.code in TRANSIENT:
        return errors.ledger_unavailable()
    return errors.ledger_rejected(error.code.name, error.reason or "UNSPECIFIED")


def _refused(request: Any, error: CommerceError) -> DomainError:
    mapped = ledger_error(error)
    # Kept as owed and retried either way; a permanent refusal needs an operator: say so.
    level = logging.WARNING if mapped.reason == errors.LEDGER_UNAVAILABLE else logging.ERROR
    log.log(
        level,
        "ledger refused %s: %s %s",
        type(request).__name__,
        error.code.name,
        error.reason,
    )
    return mapped


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerOp:
    """One ledger movement of a payment, kept on the payment until the ledger has it.

    `kind`: hold (hold `number` of `amount`), post (post `hold` for `amount`), void (void
    `hold`), capture_entry, refund_entry (of `refund_id`). `step` is the payments request id
    the ledger request id derives from, so performing an op twice is a ledger replay.
    """

    kind: str
    step: str
    amount_minor: int = 0
    hold: str = ""
    number: int = 0
    refund_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "amount_minor": self.amount_minor,
            "hold": self.hold,
            "number": self.number,
            "refund_id": self.refund_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerOp:
        return cls(
            kind=str(data["kind"]),
            step=str(data["step"]),
            amount_minor=int(data.get("amount_minor", 0)),
            hold=str(data.get("hold", "")),
            number=int(data.get("number", 0)),
            refund_id=str(data.get("refund_id", "")),
        )


async def perform(
    postings: LedgerPostings, tenant: str, payment_id: str, currency: str, op: LedgerOp
) -> None:
    """Send one op to the ledger (LEDGER_UNAVAILABLE / LEDGER_REJECTED when it does not take
    it)."""
    amount = Money(op.amount_minor, currency)
    match op.kind:
        case "hold":
            await postings.hold(tenant, payment_id, op.number, amount, op.step)
        case "post":
            await postings.post_hold(tenant, payment_id, op.hold, amount, op.step)
        case "void":
            await postings.void_hold(tenant, payment_id, op.hold, op.step)
        case "capture_entry":
            await postings.captured_at_once(tenant, payment_id, amount, op.step)
        case "refund_entry":
            await postings.refunded(tenant, payment_id, op.refund_id, amount, op.step)
        case _:
            raise ValueError(f"unknown ledger op {op.kind}")
