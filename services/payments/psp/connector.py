"""The one interface every PSP connector implements."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from clients.deadline import Deadline
from services.payments.domain.money import Money
from services.payments.psp.model import AuthorizeRequest, PspPayment, PspRefund, SettlementLine


class PspConnector(Protocol):
    """A PSP spoken to over HTTP. Every method takes the deadline it must answer by.

    Failures raise `PspFailure` with a `FailureKind`; mutating calls send `idempotency_key`
    as the PSP's idempotency key, so a retry with the same key can never act twice.
    """

    @property
    def psp_id(self) -> str: ...

    async def authorize(self, request: AuthorizeRequest, *, deadline: Deadline) -> PspPayment: ...

    async def capture(
        self,
        psp_reference: str,
        amount: Money,
        *,
        final: bool,
        idempotency_key: str,
        deadline: Deadline,
    ) -> PspPayment: ...

    async def void(
        self, psp_reference: str, *, idempotency_key: str, deadline: Deadline
    ) -> PspPayment: ...

    async def refund(
        self, psp_reference: str, amount: Money, *, idempotency_key: str, deadline: Deadline
    ) -> PspRefund: ...

    async def retrieve(self, psp_reference: str, *, deadline: Deadline) -> PspPayment:
        """The payment as the PSP knows it now: resolves an unknown capture or void."""
        ...

    async def find_authorization(
        self, idempotency_key: str, *, deadline: Deadline
    ) -> PspPayment | None:
        """The payment an authorization with this key created, if any (unknown outcome)."""
        ...

    async def settlement_report(
        self, start: date, end: date, *, deadline: Deadline
    ) -> list[SettlementLine]: ...
