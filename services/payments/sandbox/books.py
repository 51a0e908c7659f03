"""The sandbox processor's books: authorizations, captures, voids, refunds, settlement lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.payments.ids import random_id

FEE_FIXED_MINOR = 30
FEE_BPS = 290
"""Each capture costs 30 minor units + 2.90 %, rounded down; refunds cost nothing."""


class SandboxError(Exception):
    """An error answer: HTTP status plus the `{error: {type, code, message}}` body."""

    def __init__(self, status: int, error_type: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.error_type, "code": self.code, "message": str(self)}}


def _id(prefix: str) -> str:
    return random_id(f"{prefix}_", 20)


@dataclass(slots=True, kw_only=True)
class Authorization:
    id: str
    amount_minor: int
    currency: str
    status: str
    idempotency_key: str
    created: datetime
    description: str = ""
    amount_captured_minor: int = 0
    amount_refunded_minor: int = 0
    decline_code: str = ""
    refunds: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "authorization",
            "status": self.status,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "amount_captured_minor": self.amount_captured_minor,
            "amount_refunded_minor": self.amount_refunded_minor,
            "decline_code": self.decline_code,
            "description": self.description,
            "refunds": list(self.refunds),
            "created": int(self.created.timestamp()),
        }


@dataclass(slots=True, kw_only=True)
class Refund:
    id: str
    authorization: str
    amount_minor: int
    currency: str
    created: datetime
    status: str = "succeeded"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "authorization": self.authorization,
            "status": self.status,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "created": int(self.created.timestamp()),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementEntry:
    line_id: str
    settlement_date: date
    type: str
    reference: str
    authorization: str
    currency: str
    gross_minor: int
    fee_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.fee_minor


def capture_fee(amount_minor: int) -> int:
    return FEE_FIXED_MINOR + amount_minor * FEE_BPS // 10_000


class Books:
    """All sandbox state, in memory; one instance per running sandbox."""

    def __init__(self) -> None:
        self.authorizations: dict[str, Authorization] = {}
        self.refunds: dict[str, Refund] = {}
        self.settlement: list[SettlementEntry] = []

    def authorization(self, authorization_id: str) -> Authorization:
        found = self.authorizations.get(authorization_id)
        if found is None:
            raise SandboxError(404, "invalid_request", "not_found", "no such authorization")
        return found

    def by_idempotency_key(self, key: str) -> list[Authorization]:
        return [a for a in self.authorizations.values() if a.idempotency_key == key]

    def authorize(
        self,
        *,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        capture: bool,
        description: str,
        decline_code: str,
        now: datetime,
    ) -> Authorization:
        status = "declined" if decline_code else "authorized"
        authorization = Authorization(
            id=_id("sbx_auth"),
            amount_minor=amount_minor,
            currency=currency,
            status=status,
            idempotency_key=idempotency_key,
            created=now,
            description=description,
            decline_code=decline_code,
        )
        self.authorizations[authorization.id] = authorization
        if capture and not decline_code:
            self.capture(authorization.id, None, final=True, now=now)
        return authorization

    def capture(
        self, authorization_id: str, amount_minor: int | None, *, final: bool, now: datetime
    ) -> Authorization:
        auth = self.authorization(authorization_id)
        if auth.status not in ("authorized", "partially_captured"):
            raise SandboxError(422, "invalid_request", "invalid_state", f"is {auth.status}")
        remaining = auth.amount_minor - auth.amount_captured_minor
        amount = remaining if amount_minor is None else amount_minor
        if not 0 < amount <= remaining:
            raise SandboxError(422, "invalid_request", "amount_exceeded", "above capturable")
        auth.amount_captured_minor += amount
        done = final or auth.amount_captured_minor == auth.amount_minor
        auth.status = "captured" if done else "partially_captured"
        self._settle(
            now,
            line_type="capture",
            reference=_id("sbx_cap"),
            auth=auth,
            gross_minor=amount,
            fee_minor=capture_fee(amount),
        )
        return auth

    def void(self, authorization_id: str) -> Authorization:
        auth = self.authorization(authorization_id)
        if auth.status == "authorized":
            auth.status = "voided"
        elif auth.status == "partially_captured":
            auth.status = "captured"
        else:
            raise SandboxError(422, "invalid_request", "invalid_state", f"is {auth.status}")
        return auth

    def refund(self, authorization_id: str, amount_minor: int | None, now: datetime) -> Refund:
        auth = self.authorization(authorization_id)
        refundable = auth.amount_captured_minor - auth.amount_refunded_minor
        if auth.status not in ("captured", "partially_captured") or refundable == 0:
            raise SandboxError(422, "invalid_request", "invalid_state", "nothing to refund")
        amount = refundable if amount_minor is None else amount_minor
        if not 0 < amount <= refundable:
            raise SandboxError(422, "invalid_request", "amount_exceeded", "above refundable")
        refund = Refund(
            id=_id("sbx_re"),
            authorization=auth.id,
            amount_minor=amount,
            currency=auth.currency,
            created=now,
        )
        auth.amount_refunded_minor += amount
        auth.refunds.append(refund.id)
        self.refunds[refund.id] = refund
        self._settle(
            now,
            line_type="refund",
            reference=refund.id,
            auth=auth,
            gross_minor=-amount,
            fee_minor=0,
        )
        return refund

    def settlement_between(self, start: date, end: date) -> list[SettlementEntry]:
        return [e for e in self.settlement if start <= e.settlement_date <= end]

    def _settle(
        self,
        now: datetime,
        *,
        line_type: str,
        reference: str,
        auth: Authorization,
        gross_minor: int,
        fee_minor: int,
    ) -> None:
        self.settlement.append(
            SettlementEntry(
                line_id=f"sl_{len(self.settlement) + 1:08d}",
                settlement_date=now.date(),
                type=line_type,
                reference=reference,
                authorization=auth.id,
                currency=auth.currency,
                gross_minor=gross_minor,
                fee_minor=fee_minor,
            )
        )
