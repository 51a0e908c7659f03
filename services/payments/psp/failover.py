"""Authorize along a route: the next PSP only after a RETRYABLE_SAFE failure, never otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode, Operation
from services.payments.psp.guarded import CallRecord, GuardedPsp, Send
from services.payments.psp.model import AuthorizeRequest, FailureKind, PspFailure, PspPayment


@dataclass(slots=True)
class FailoverResult:
    """How an authorization along a route ended, with every attempt made.

    Exactly one of `payment` and `failure` is set. An AMBIGUOUS `failure` names the PSP that
    may hold an authorization: the payment records it and resolves it by asking that PSP
    (`resolve_authorization`), never by trying another.
    """

    payment: PspPayment | None = None
    failure: PspFailure | None = None
    records: list[CallRecord] = field(default_factory=list)

    @property
    def psp(self) -> str:
        if self.payment is not None:
            return self.payment.psp
        return self.failure.psp if self.failure is not None else ""

    @property
    def outcome_unknown(self) -> bool:
        return self.failure is not None and self.failure.kind is FailureKind.AMBIGUOUS


async def authorize_with_failover(
    route: Sequence[str],
    psps: Mapping[str, GuardedPsp],
    request: AuthorizeRequest,
    deadline: Deadline,
) -> FailoverResult:
    """Try each PSP of `route` in order with the same idempotency key (the request_id)."""
    result = FailoverResult()
    for psp_id in route:
        guarded = psps.get(psp_id)
        if guarded is None:
            continue  # no connector configured: routing drops these, this is a second guard
        try:
            result.payment = await guarded.call(
                Operation.AUTHORIZE,
                _authorizer(guarded, request),
                deadline=deadline,
                records=result.records,
            )
        except PspFailure as failure:
            result.failure = failure
            if failure.kind is not FailureKind.RETRYABLE_SAFE:
                return result  # a decision, a bad request, or an unknown outcome: stop here
        else:
            result.failure = None
            return result
    code = FailureCode.PSP_UNAVAILABLE if route else FailureCode.NO_ROUTE
    result.failure = PspFailure(
        FailureKind.RETRYABLE_SAFE, "", "no eligible PSP could be reached", code=code
    )
    return result


def _authorizer(guarded: GuardedPsp, request: AuthorizeRequest) -> Send[PspPayment]:
    async def send(attempt: Deadline) -> PspPayment:
        return await guarded.connector.authorize(request, deadline=attempt)

    return send


async def resolve_authorization(
    guarded: GuardedPsp, idempotency_key: str, deadline: Deadline, records: list[CallRecord]
) -> PspPayment | None:
    """Ask the PSP what an authorization with an unknown outcome did (None: nothing)."""

    async def send(attempt: Deadline) -> PspPayment | None:
        return await guarded.connector.find_authorization(idempotency_key, deadline=attempt)

    return await guarded.call(Operation.STATUS_INQUIRY, send, deadline=deadline, records=records)
