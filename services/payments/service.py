"""The payments use cases: idempotent, resumable orchestration of database, PSPs and ledger.

Every mutating operation runs in three steps, and nothing slow happens inside a transaction:
1. one transaction claims the request_id (idempotency record PENDING), loads the payment,
   marks it busy with this request and checks the domain rules (nothing is sent to a PSP that
   the rules would refuse);
2. the PSP call (routing, failover, retries, breaker, bulkhead; the request_id is the PSP's
   idempotency key) and then the ledger posting (deterministic ledger request ids);
3. one transaction applies the outcome to the payment, records attempts and the transition,
   stages the events in the outbox and stores the response against the request_id.
A failure between the steps releases the claim and the busy mark: a retry with the same
request_id runs the steps again, and the PSP and the ledger replay what they already did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message

from clients.deadline import Deadline, current_deadline
from commerce.payments.v1 import events_pb2 as ev
from commerce.payments.v1 import payments_service_pb2 as pb
from services.chassis.card_data import looks_like_card_number
from services.chassis.errors import Aborted, DomainError, IdempotencyKeyReused
from services.payments import messages
from services.payments.domain import errors
from services.payments.domain.attempts import (
    AmbiguousOutcome,
    Attempt,
    FailureCode,
    Operation,
    PaymentFailure,
)
from services.payments.domain.methods import CaptureMethod, PaymentMethod
from services.payments.domain.money import Money
from services.payments.domain.payment import Payment
from services.payments.domain.records import Customer, PaymentRecord
from services.payments.domain.refunds import RefundReason, RefundState
from services.payments.domain.routing import RoutingConfig, RoutingHints, route
from services.payments.domain.states import PaymentState
from services.payments.ids import random_id
from services.payments.ledger import LedgerOp, LedgerPostings, hold_id, perform
from services.payments.ledger import request_id as ledger_request_id
from services.payments.psp.failover import authorize_with_failover, resolve_authorization
from services.payments.psp.guarded import CallRecord, GuardedPsp
from services.payments.psp.model import (
    AuthorizeRequest,
    FailureKind,
    PspFailure,
    PspPayment,
    PspPaymentStatus,
)
from services.payments.storage.idempotency import ClaimState
from services.payments.storage.routing import StoredRouting
from services.payments.storage.service_wide import PaymentRef, WebhookDelivery
from services.payments.storage.unit_of_work import TransactionRunner, UnitOfWork
from services.payments.webhooks import verify

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Message)
T = TypeVar("T")

AUTHORIZATION_LIFETIME = timedelta(days=7)
# Event types about payments (sandbox: authorization.*, refund.*; Stripe: payment_intent.*,
# charge.*, refund.*); anything else is acknowledged and ignored.
_ACTED_ON = ("authorization.", "refund.", "payment_intent.", "charge.")


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    psp_deadline_seconds: float = 10.0
    """The whole PSP step of one operation (all retries and failovers)."""
    lease_seconds: float = 30.0
    """How long a request owns its request_id / payment before a twin may take over."""
    wait_seconds: float = 10.0
    """How long a twin waits for the first request when the call has no deadline."""
    resolve_backoff_seconds: float = 2.0
    """First wait before the next status inquiry of an unknown outcome (doubles, up to 5 min)."""
    webhook_tolerance_seconds: int = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizeCommand:
    request_id: str
    payment_id: str
    order: str
    customer: Customer | None
    amount: Money
    method: PaymentMethod
    capture_method: CaptureMethod
    hints: RoutingHints
    description: str
    metadata: dict[str, str]


class _Busy(Exception):
    """The payment is being worked on by another request: wait and try again."""


class _InProgress(Exception):
    """A twin with the same request_id is working: wait for its response."""


def fingerprint(request: Message) -> bytes:
    """SHA-256 of the request without its request_id (deterministic serialization)."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "request_id" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def _now() -> datetime:
    return datetime.now(UTC)


class PaymentsService:
    def __init__(
        self,
        runner: TransactionRunner,
        psps: Mapping[str, GuardedPsp],
        ledger: LedgerPostings,
        *,
        webhook_secrets: Mapping[str, bytes] | None = None,
        options: ServiceOptions = ServiceOptions(),
    ) -> None:
        self._runner = runner
        self._psps = psps
        self._ledger = ledger
        self._secrets = dict(webhook_secrets or {})
        self._options = options

    @property
    def psp_ids(self) -> tuple[str, ...]:
        return tuple(self._psps)

    # -- idempotency ---------------------------------------------------------------------

    async def _idempotent(
        self,
        tenant: str,
        method: str,
        request: Message,
        response_type: type[R],
        *,
        start: Callable[[UnitOfWork], Awaitable[T]],
        finish: Callable[[T], Awaitable[R]],
    ) -> R:
        """Claim the request_id and run `start` in one transaction, then `finish` (which stores
        the response in its last transaction); replay, wait for a twin, or refuse a reuse."""
        request_id = str(getattr(request, "request_id", "")) or str(uuid.uuid4())
        digest = fingerprint(request)
        deadline = self._wait_deadline()
        pause = 0.005
        while True:

            async def claim(uow: UnitOfWork) -> tuple[R | None, T | None]:
                found = await uow.idempotency.claim(
                    request_id, method, digest, _now(), self._options.lease_seconds
                )
                if found.method != method or found.fingerprint != digest:
                    raise IdempotencyKeyReused(request_id)
                if found.state is ClaimState.DONE:
                    assert found.response is not None
                    return response_type.FromString(found.response), None
                if found.state is ClaimState.IN_PROGRESS:
                    raise _InProgress
                return None, await start(uow)

            try:
                replay, started = await self._runner.run(tenant, claim)
            except (_InProgress, _Busy) as waiting:
                if deadline.remaining() <= pause:
                    if isinstance(waiting, _Busy):
                        raise errors.payment_busy() from None
                    raise Aborted(
                        "REQUEST_IN_PROGRESS",
                        "a request with this request_id is still being processed; retry",
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            if replay is not None:
                return replay
            assert started is not None
            return await finish(started)

    def _wait_deadline(self) -> Deadline:
        own = Deadline.after(self._options.wait_seconds)
        return own.earliest(current_deadline())

    def _psp_deadline(self) -> Deadline:
        return Deadline.after(self._options.psp_deadline_seconds).earliest(current_deadline())

    async def _release(self, tenant: str, payment_id: str | None, request_id: str) -> None:
        """Forget the claim and the busy mark of a request that failed without an answer."""

        async def release(uow: UnitOfWork) -> None:
            await uow.idempotency.release(request_id)
            if payment_id is not None:
                await uow.payments.release_busy(payment_id, request_id)

        try:
            await asyncio.shield(self._runner.run(tenant, release))
        except Exception:  # the lease ends anyway; the original error matters more
            log.warning("could not release request claim", exc_info=True)

    async def _load_busy(self, uow: UnitOfWork, payment_id: str, request_id: str) -> PaymentRecord:
        record = await uow.payments.get(payment_id, for_update=True)
        if record is None:
            raise errors.payment_not_found(f"tenants/{uow.payments.tenant}/payments/{payment_id}")
        now = _now()
        if not await uow.payments.claim_busy(
            payment_id, request_id, now, self._options.lease_seconds
        ):
            raise _Busy
        record.busy_request_id = request_id
        return record

    # -- attempts ------------------------------------------------------------------------

    @staticmethod
    def _record_calls(
        payment: Payment,
        records: list[CallRecord],
        amount: Money,
        key: str,
        *,
        refund: str = "",
        reference: str = "",
    ) -> None:
        for call in records:
            failure = call.failure
            payment.record_attempt(
                Attempt(
                    attempt_number=payment.next_attempt_number(),
                    operation=call.operation,
                    psp=call.psp,
                    outcome=call.outcome,
                    error_class=call.error_class,
                    amount=amount,
                    psp_idempotency_key=key,
                    start_time=call.start_time,
                    end_time=call.end_time,
                    failure_code=failure.code if failure else None,
                    psp_code=failure.psp_code if failure else "",
                    psp_reference=(failure.psp_reference if failure else "") or reference,
                    refund=refund,
                )
            )

    @staticmethod
    def _failure_of(failure: PspFailure) -> PaymentFailure:
        declined = failure.kind is FailureKind.DECLINED
        return PaymentFailure(
            code=failure.code,
            reason="declined by the PSP" if declined else "the PSP could not process it",
            retryable=failure.kind is FailureKind.RETRYABLE_SAFE
            or failure.code in (FailureCode.INSUFFICIENT_FUNDS, FailureCode.PROCESSING_ERROR),
            psp=failure.psp,
            psp_code=failure.psp_code,
        )

    # -- events --------------------------------------------------------------------------

    @staticmethod
    def _unknown_event(record: PaymentRecord) -> tuple[Message, str]:
        outcome = record.payment.ambiguous_outcome
        assert outcome is not None
        return ev.PaymentOutcomeUnknown(
            payment=messages.payment(record),
            ambiguous_outcome=messages.ambiguous(record, outcome),
            event_time=messages.timestamp(record.payment.update_time),
        ), record.name

    async def _mark_unresolved(self, uow: UnitOfWork, record: PaymentRecord, now: datetime) -> None:
        outcome = record.payment.ambiguous_outcome
        assert outcome is not None
        backoff = min(self._options.resolve_backoff_seconds * 2**outcome.resolution_attempts, 300.0)
        await uow.service_wide.mark_unresolved(
            PaymentRef(record.tenant, record.payment_id),
            psp=outcome.psp,
            operation=outcome.operation.value,
            attempt=outcome.attempt_number,
            due=now + timedelta(seconds=backoff),
            now=now,
        )

    # -- authorize -----------------------------------------------------------------------

    async def authorize(
        self, tenant: str, command: AuthorizeCommand, request: pb.AuthorizePaymentRequest
    ) -> pb.AuthorizePaymentResponse:
        async def start(uow: UnitOfWork) -> tuple[PaymentRecord, tuple[str, ...]]:
            now = _now()
            fresh = PaymentRecord(
                tenant=tenant,
                payment=Payment(
                    payment_id=command.payment_id or random_id("pay-"),
                    amount=command.amount,
                    payment_method=command.method,
                    capture_method=command.capture_method,
                    create_time=now,
                    update_time=now,
                ),
                request_id=command.request_id,
                order=command.order,
                customer=command.customer,
                hints=command.hints,
                description=command.description,
                metadata=command.metadata,
            )
            # Insert first (the common case: a new payment, one statement); only when the
            # request id (or the payment id) is taken, look the payment up: a retry of a
            # request whose claim was released finds the payment it created and resumes it.
            record = fresh
            if not await uow.payments.insert(fresh, now, self._options.lease_seconds):
                found = await uow.payments.by_request(command.request_id)
                if found is None:  # the payment id is another request's
                    raise errors.payment_already_exists(fresh.name)
                if not await uow.payments.claim_busy(
                    found.payment_id, command.request_id, now, self._options.lease_seconds
                ):
                    raise _Busy
                record = found
            routing = await uow.routing.get()
            if record.payment.state is not PaymentState.REQUIRES_AUTHORIZATION:
                return record, ()
            if record.payment.outcome_unknown:
                return record, ()
            chosen = route(
                routing.config,
                command.amount,
                command.method.type,
                command.hints,
                supported=tuple(self._psps),
            )
            return record, chosen.psps

        async def finish(
            started: tuple[PaymentRecord, tuple[str, ...]],
        ) -> pb.AuthorizePaymentResponse:
            record, psps = started
            try:
                return await self._authorize(tenant, record, psps, command)
            except BaseException:
                await self._release(tenant, record.payment_id, command.request_id)
                raise

        return await self._idempotent(
            tenant,
            "AuthorizePayment",
            request,
            pb.AuthorizePaymentResponse,
            start=start,
            finish=finish,
        )

    async def _authorize(
        self,
        tenant: str,
        record: PaymentRecord,
        psps: tuple[str, ...],
        command: AuthorizeCommand,
    ) -> pb.AuthorizePaymentResponse:
        payment = record.payment
        key = command.request_id
        if payment.state is not PaymentState.REQUIRES_AUTHORIZATION or payment.outcome_unknown:
            # A resumed request whose outcome is already known (e.g. resolved meanwhile).
            return await self._complete(
                tenant,
                record.payment_id,
                key,
                lambda r: pb.AuthorizePaymentResponse(payment=messages.payment(r)),
            )
        if not psps:
            failure = PaymentFailure(
                code=FailureCode.NO_ROUTE,
                reason="no PSP is configured for this currency, amount and method",
                retryable=False,
            )
            return await self._authorization_settled(
                tenant, record, key, [], psp_payment=None, failure=failure
            )
        result = await authorize_with_failover(
            psps,
            self._psps,
            AuthorizeRequest(
                amount=command.amount,
                payment_method_token=command.method.token,
                idempotency_key=key,
                capture=command.capture_method is CaptureMethod.AUTOMATIC,
                description=command.description,
            ),
            self._psp_deadline(),
        )
        if result.payment is not None:
            return await self._authorization_settled(
                tenant, record, key, result.records, psp_payment=result.payment, failure=None
            )
        psp_failure = result.failure
        assert psp_failure is not None
        if (
            psp_failure.kind is FailureKind.RETRYABLE_SAFE
            and psp_failure.code is not FailureCode.NO_ROUTE
        ):
            await self._save_attempts_only(tenant, record.payment_id, result.records, key)
            raise errors.psp_unavailable(Operation.AUTHORIZE.value)
        if psp_failure.kind is FailureKind.AMBIGUOUS:
            return await self._authorization_unknown(tenant, record, key, result.records)
        return await self._authorization_settled(
            tenant,
            record,
            key,
            result.records,
            psp_payment=None,
            failure=self._failure_of(psp_failure),
        )

    # -- ledger ----------------------------------------------------------------------------

    async def _post_ledger(
        self,
        record: PaymentRecord,
        ops: list[LedgerOp],
        refusals: list[DomainError] | None = None,
    ) -> list[LedgerOp]:
        """Perform `ops` in order; the ones the ledger did not take, which stay owed whether it
        was away (LEDGER_UNAVAILABLE) or refused for good (LEDGER_REJECTED: the PSP already
        moved the money, so the payment records it and an operator settles the ledger side).
        Why the ledger did not take them is appended to `refusals`."""
        for index, op in enumerate(ops):
            try:
                await perform(
                    self._ledger, record.tenant, record.payment_id, record.payment.currency, op
                )
            except DomainError as error:
                if error.reason not in (errors.LEDGER_UNAVAILABLE, errors.LEDGER_REJECTED):
                    raise
                log.warning("the ledger did not take a payment's movement; it stays pending")
                if refusals is not None:
                    refusals.append(error)
                return ops[index:]
        return []

    async def _owe_ledger(self, uow: UnitOfWork, record: PaymentRecord, now: datetime) -> None:
        """Queue the payment for the resolver, which performs its pending ledger movements."""
        await uow.service_wide.mark_unresolved(
            PaymentRef(record.tenant, record.payment_id),
            psp=record.payment.psp,
            operation="LEDGER",
            attempt=0,
            due=now + timedelta(seconds=self._options.resolve_backoff_seconds),
            now=now,
        )

    async def _flush_ledger(
        self,
        record: PaymentRecord,
        *,
        keep_busy: bool,
        refusals: list[DomainError] | None = None,
    ) -> bool:
        """Perform the payment's pending ledger movements; True when none are left."""
        owed = [LedgerOp.from_json(op) for op in record.ledger_pending]
        if not owed:
            return True
        left = await self._post_ledger(record, owed, refusals)

        async def apply(uow: UnitOfWork) -> None:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            if current is None or current.ledger_pending != record.ledger_pending:
                return  # someone else flushed meanwhile
            current.ledger_pending = [op.to_json() for op in left]
            current.payment.update_time = now
            await uow.payments.save(
                current, operation="LEDGER", request_id=None, keep_busy=keep_busy
            )
            if left:
                await self._owe_ledger(uow, current, now)

        await self._runner.run(record.tenant, apply)
        record.ledger_pending = [op.to_json() for op in left]
        return not left

    async def _ledger_first(self, record: PaymentRecord) -> None:
        """An operation waits for the ledger movements its payment still owes: refused with
        LEDGER_UNAVAILABLE while the ledger is away, LEDGER_REJECTED when it refuses them."""
        refusals: list[DomainError] = []
        if not await self._flush_ledger(record, keep_busy=True, refusals=refusals):
            raise refusals[0] if refusals else errors.ledger_unavailable()

    @staticmethod
    def _authorization_ops(
        record: PaymentRecord, psp_payment: PspPayment, step: str
    ) -> tuple[list[LedgerOp], tuple[str, int]]:
        """The authorization's ledger movement and the (hold id, hold count) to store."""
        amount = psp_payment.amount.amount_minor
        if psp_payment.status is PspPaymentStatus.CAPTURED:
            op = LedgerOp(kind="capture_entry", step=step, amount_minor=amount)
            return [op], ("", record.ledger_hold_count)
        if record.ledger_hold_count == 0:
            op = LedgerOp(kind="hold", step=step, amount_minor=amount, number=1)
            return [op], (hold_id(record.tenant, record.payment_id, 1), 1)
        return [], (record.ledger_hold_id, record.ledger_hold_count)

    async def _authorization_settled(
        self,
        tenant: str,
        record: PaymentRecord,
        key: str,
        calls: list[CallRecord],
        *,
        psp_payment: PspPayment | None,
        failure: PaymentFailure | None,
    ) -> pb.AuthorizePaymentResponse:
        hold: tuple[str, int] | None = None
        pending: list[LedgerOp] = []
        if psp_payment is not None and psp_payment.status in (
            PspPaymentStatus.AUTHORIZED,
            PspPaymentStatus.CAPTURED,
        ):
            ops, hold = self._authorization_ops(record, psp_payment, key)
            pending = await self._post_ledger(record, ops)
        elif psp_payment is not None:
            failure = PaymentFailure(
                code=FailureCode.DECLINED
                if psp_payment.status is PspPaymentStatus.DECLINED
                else FailureCode.PROCESSING_ERROR,
                reason=f"the PSP answered with status {psp_payment.status.value.lower()}",
                retryable=False,
                psp=psp_payment.psp,
            )

        async def apply(uow: UnitOfWork) -> pb.AuthorizePaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            payment = current.payment
            reference = psp_payment.psp_reference if psp_payment else ""
            self._record_calls(payment, calls, payment.amount, key, reference=reference)
            events: list[tuple[Message, str]] = []
            if hold is not None and psp_payment is not None:
                self._apply_authorization(current, psp_payment, hold, now)
                current.ledger_pending = [op.to_json() for op in pending]
                if pending:
                    await self._owe_ledger(uow, current, now)
                events += self._authorized_events(current, psp_payment)
            else:
                assert failure is not None
                payment.authorization_failed(failure, now)
                events.append(
                    (
                        ev.PaymentAuthorizationFailed(
                            payment=messages.payment(current),
                            failure=messages.failure(failure),
                            event_time=messages.timestamp(now),
                        ),
                        current.name,
                    )
                )
            await uow.payments.save(current, operation="AUTHORIZE", request_id=key)
            response = pb.AuthorizePaymentResponse(payment=messages.payment(current))
            events = [(self._refresh(m, current), s) for m, s in events]
            await uow.publish(events)
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    @staticmethod
    def _refresh(message: Message, record: PaymentRecord) -> Message:
        """Events carry the payment as saved (with its new etag)."""
        if "payment" in message.DESCRIPTOR.fields_by_name:
            getattr(message, "payment").CopyFrom(messages.payment(record))  # noqa: B009
        return message

    @staticmethod
    def _apply_authorization(
        record: PaymentRecord, psp_payment: PspPayment, hold: tuple[str, int], now: datetime
    ) -> None:
        payment = record.payment
        if psp_payment.status is PspPaymentStatus.CAPTURED:
            payment.authorized_and_captured(
                psp=psp_payment.psp,
                psp_reference=psp_payment.psp_reference,
                amount=psp_payment.amount,
                now=now,
            )
        else:
            payment.authorized(
                psp=psp_payment.psp,
                psp_reference=psp_payment.psp_reference,
                amount=psp_payment.amount,
                now=now,
                expire_time=now + AUTHORIZATION_LIFETIME,
            )
        record.ledger_hold_id, record.ledger_hold_count = hold

    @staticmethod
    def _authorized_events(
        record: PaymentRecord, psp_payment: PspPayment
    ) -> list[tuple[Message, str]]:
        now = record.payment.update_time
        events: list[tuple[Message, str]] = [
            (
                ev.PaymentAuthorized(
                    payment=messages.payment(record), event_time=messages.timestamp(now)
                ),
                record.name,
            )
        ]
        if psp_payment.status is PspPaymentStatus.CAPTURED:
            events.append(
                (
                    ev.PaymentCaptured(
                        payment=messages.payment(record),
                        amount=messages.money(psp_payment.amount),
                        final_capture=True,
                        psp_reference=psp_payment.psp_reference,
                        event_time=messages.timestamp(now),
                    ),
                    record.name,
                )
            )
        return events

    async def _authorization_unknown(
        self, tenant: str, record: PaymentRecord, key: str, calls: list[CallRecord]
    ) -> pb.AuthorizePaymentResponse:
        async def apply(uow: UnitOfWork) -> pb.AuthorizePaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            self._record_calls(current.payment, calls, current.payment.amount, key)
            await uow.payments.save(current, operation="AUTHORIZE", request_id=key)
            await self._mark_unresolved(uow, current, now)
            await uow.publish([self._unknown_event(current)])
            response = pb.AuthorizePaymentResponse(payment=messages.payment(current))
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    async def _save_attempts_only(
        self,
        tenant: str,
        payment_id: str,
        calls: list[CallRecord],
        key: str,
        amount: Money | None = None,
    ) -> None:
        """Record the attempts of a call that failed without effect (PSP_UNAVAILABLE)."""

        async def apply(uow: UnitOfWork) -> None:
            current = await uow.payments.get(payment_id, for_update=True)
            assert current is not None
            self._record_calls(current.payment, calls, amount or current.payment.amount, key)
            current.payment.update_time = _now()
            await uow.payments.save(current, operation="ATTEMPT", request_id=key, keep_busy=True)

        await self._runner.run(tenant, apply)

    async def _complete(
        self,
        tenant: str,
        payment_id: str,
        key: str,
        respond: Callable[[PaymentRecord], R],
    ) -> R:
        async def apply(uow: UnitOfWork) -> R:
            current = await uow.payments.get(payment_id, for_update=True)
            assert current is not None
            await uow.payments.release_busy(payment_id, key)
            response = respond(current)
            await uow.idempotency.complete(key, response.SerializeToString(), _now())
            return response

        return await self._runner.run(tenant, apply)

    # -- capture -------------------------------------------------------------------------

    async def capture(
        self,
        tenant: str,
        payment_id: str,
        amount: Money | None,
        request: pb.CapturePaymentRequest,
        *,
        final: bool,
    ) -> pb.CapturePaymentResponse:
        key = request.request_id

        async def start(uow: UnitOfWork) -> tuple[PaymentRecord, Money, bool]:
            record = await self._load_busy(uow, payment_id, key)
            take = record.payment.check_capture(amount, _now())
            done = final or take == record.payment.capturable
            return record, take, done

        async def finish(started: tuple[PaymentRecord, Money, bool]) -> pb.CapturePaymentResponse:
            record, take, done = started
            try:
                await self._ledger_first(record)
                return await self._capture(tenant, record, take, key, final=done)
            except BaseException:
                await self._release(tenant, payment_id, key)
                raise

        return await self._idempotent(
            tenant, "CapturePayment", request, pb.CapturePaymentResponse, start=start, finish=finish
        )

    async def _capture(
        self, tenant: str, record: PaymentRecord, amount: Money, key: str, *, final: bool
    ) -> pb.CapturePaymentResponse:
        payment = record.payment
        guarded = self._guarded(payment.psp)
        calls: list[CallRecord] = []

        async def send(attempt: Deadline) -> PspPayment:
            return await guarded.connector.capture(
                payment.psp_reference, amount, final=final, idempotency_key=key, deadline=attempt
            )

        try:
            result = await guarded.call(
                Operation.CAPTURE, send, deadline=self._psp_deadline(), records=calls
            )
        except PspFailure as failure:
            return await self._operation_failed(
                tenant,
                record,
                Operation.CAPTURE,
                failure,
                calls=calls,
                amount=amount,
                key=key,
                respond=lambda r: pb.CapturePaymentResponse(payment=messages.payment(r)),
            )
        took = self.captured_by_psp(record.payment, amount, result)
        ops, hold = self._capture_ops(record, took, key, final=final)
        pending = await self._post_ledger(record, ops)

        async def apply(uow: UnitOfWork) -> pb.CapturePaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            self._record_calls(current.payment, calls, amount, key, reference=result.psp_reference)
            current.payment.captured(took, final=final, now=now)
            current.ledger_hold_id, current.ledger_hold_count = hold
            current.ledger_pending = [op.to_json() for op in pending]
            if pending:
                await self._owe_ledger(uow, current, now)
            await uow.payments.save(
                current, operation="CAPTURE", request_id=key, amount_minor=took.amount_minor
            )
            await uow.publish([self._captured_event(current, took, result.psp_reference)])
            response = pb.CapturePaymentResponse(payment=messages.payment(current))
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    @staticmethod
    def captured_by_psp(payment: Payment, requested: Money, result: PspPayment) -> Money:
        """What this capture took at the PSP: the PSP's captured total minus what the payment
        had captured before, when the PSP reports a total that fits (same currency, more than
        before, at most the capturable rest); the requested amount when it reports none (0)
        or one that cannot be this capture's (the payment records the PSP's figure, not ours,
        whenever the PSP gives one)."""
        total = result.amount_captured
        if total.currency != requested.currency:
            return requested
        took = total.amount_minor - payment.amount_captured.amount_minor
        if 0 < took <= payment.capturable.amount_minor:
            return Money(took, requested.currency)
        return requested

    @staticmethod
    def _captured_event(
        record: PaymentRecord, amount: Money, reference: str
    ) -> tuple[Message, str]:
        return ev.PaymentCaptured(
            payment=messages.payment(record),
            amount=messages.money(amount),
            final_capture=record.payment.state is PaymentState.CAPTURED,
            psp_reference=reference,
            event_time=messages.timestamp(record.payment.update_time),
        ), record.name

    @staticmethod
    def _capture_ops(
        record: PaymentRecord, amount: Money, step: str, *, final: bool
    ) -> tuple[list[LedgerOp], tuple[str, int]]:
        """Post the current hold for `amount`; hold the rest anew unless capturing is done."""
        rest = record.payment.capturable - amount
        ops = [
            LedgerOp(
                kind="post", step=step, amount_minor=amount.amount_minor, hold=record.ledger_hold_id
            )
        ]
        if final or rest.amount_minor == 0:
            return ops, ("", record.ledger_hold_count)
        number = record.ledger_hold_count + 1
        ops.append(LedgerOp(kind="hold", step=step, amount_minor=rest.amount_minor, number=number))
        return ops, (hold_id(record.tenant, record.payment_id, number), number)

    async def _operation_failed(
        self,
        tenant: str,
        record: PaymentRecord,
        operation: Operation,
        failure: PspFailure,
        *,
        calls: list[CallRecord],
        amount: Money,
        key: str,
        respond: Callable[[PaymentRecord], R],
    ) -> R:
        """A capture or void the PSP did not do (or may have done)."""
        if failure.kind is FailureKind.RETRYABLE_SAFE:
            await self._save_attempts_only(tenant, record.payment_id, calls, key, amount)
            raise errors.psp_unavailable(operation.value)
        unknown = failure.kind is FailureKind.AMBIGUOUS

        async def apply(uow: UnitOfWork) -> R | None:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            self._record_calls(current.payment, calls, amount, key)
            current.payment.update_time = now
            await uow.payments.save(current, operation=operation.value, request_id=key)
            if unknown:
                await self._mark_unresolved(uow, current, now)
                await uow.publish([self._unknown_event(current)])
                response = respond(current)
                await uow.idempotency.complete(key, response.SerializeToString(), now)
                return response
            payment_failure = self._failure_of(failure)
            await uow.publish(
                [
                    (
                        ev.PaymentFailed(
                            payment=messages.payment(current),
                            operation=messages.operation(operation),
                            failure=messages.failure(payment_failure),
                            event_time=messages.timestamp(now),
                        ),
                        current.name,
                    )
                ]
            )
            await uow.idempotency.release(key)
            return None

        answered = await self._runner.run(tenant, apply)
        if answered is not None:
            return answered
        raise errors.psp_declined(failure.psp, failure.code.value, operation.value)

    # -- void ----------------------------------------------------------------------------

    async def void(
        self, tenant: str, payment_id: str, reason: str, request: pb.VoidPaymentRequest
    ) -> pb.VoidPaymentResponse:
        key = request.request_id

        async def start(uow: UnitOfWork) -> PaymentRecord:
            record = await self._load_busy(uow, payment_id, key)
            record.payment.check_void()
            return record

        async def finish(record: PaymentRecord) -> pb.VoidPaymentResponse:
            try:
                await self._ledger_first(record)
                return await self._void(tenant, record, reason, key)
            except BaseException:
                await self._release(tenant, payment_id, key)
                raise

        return await self._idempotent(
            tenant, "VoidPayment", request, pb.VoidPaymentResponse, start=start, finish=finish
        )

    async def _void(
        self, tenant: str, record: PaymentRecord, reason: str, key: str
    ) -> pb.VoidPaymentResponse:
        payment = record.payment
        guarded = self._guarded(payment.psp)
        calls: list[CallRecord] = []
        released = payment.capturable

        async def send(attempt: Deadline) -> PspPayment:
            return await guarded.connector.void(
                payment.psp_reference, idempotency_key=key, deadline=attempt
            )

        try:
            result = await guarded.call(
                Operation.VOID, send, deadline=self._psp_deadline(), records=calls
            )
        except PspFailure as failure:
            return await self._operation_failed(
                tenant,
                record,
                Operation.VOID,
                failure,
                calls=calls,
                amount=released,
                key=key,
                respond=lambda r: pb.VoidPaymentResponse(payment=messages.payment(r)),
            )
        ops = [LedgerOp(kind="void", step=key, hold=record.ledger_hold_id)]
        pending = await self._post_ledger(record, ops if record.ledger_hold_id else [])

        async def apply(uow: UnitOfWork) -> pb.VoidPaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            self._record_calls(
                current.payment, calls, released, key, reference=result.psp_reference
            )
            current.payment.voided(now)
            current.ledger_hold_id = ""
            current.ledger_pending = [op.to_json() for op in pending]
            if pending:
                await self._owe_ledger(uow, current, now)
            await uow.payments.save(
                current, operation="VOID", request_id=key, amount_minor=released.amount_minor
            )
            await uow.publish([self._voided_event(current, released, reason)])
            response = pb.VoidPaymentResponse(payment=messages.payment(current))
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    @staticmethod
    def _voided_event(record: PaymentRecord, released: Money, reason: str) -> tuple[Message, str]:
        return ev.PaymentVoided(
            payment=messages.payment(record),
            amount_released=messages.money(released),
            reason=reason,
            event_time=messages.timestamp(record.payment.update_time),
        ), record.name

    # -- refund --------------------------------------------------------------------------

    async def refund(
        self,
        tenant: str,
        payment_id: str,
        request: pb.RefundPaymentRequest,
        *,
        refund_id: str,
        amount: Money | None,
        reason: RefundReason,
        description: str,
    ) -> pb.RefundPaymentResponse:
        key = request.request_id

        async def start(uow: UnitOfWork) -> tuple[PaymentRecord, str]:
            record = await self._load_busy(uow, payment_id, key)
            requests = await uow.payments.refund_requests(payment_id)
            mine = [r for r, req in requests.items() if req == key]
            if mine:  # a resumed request: its refund is already pending
                return record, mine[0]
            chosen = refund_id or random_id("re-")
            record.payment.request_refund(chosen, amount, reason, _now(), description)
            await uow.payments.save(
                record,
                operation="REFUND_REQUESTED",
                request_id=key,
                refund_requests={chosen: key},
                keep_busy=True,
            )
            return record, chosen

        async def finish(started: tuple[PaymentRecord, str]) -> pb.RefundPaymentResponse:
            record, chosen = started
            try:
                await self._ledger_first(record)
                return await self._refund(tenant, record, chosen, key)
            except BaseException:
                await self._release(tenant, payment_id, key)
                raise

        return await self._idempotent(
            tenant, "RefundPayment", request, pb.RefundPaymentResponse, start=start, finish=finish
        )

    async def _refund(
        self, tenant: str, record: PaymentRecord, refund_id: str, key: str
    ) -> pb.RefundPaymentResponse:
        payment = record.payment
        refund = payment.refunds[refund_id]
        if refund.state is not RefundState.PENDING or refund.outcome_unknown:
            return await self._complete(
                tenant, record.payment_id, key, lambda r: self._refund_response(r, refund_id)
            )
        guarded = self._guarded(payment.psp)
        calls: list[CallRecord] = []

        async def send(attempt: Deadline) -> object:
            return await guarded.connector.refund(
                payment.psp_reference, refund.amount, idempotency_key=key, deadline=attempt
            )

        try:
            result = await guarded.call(
                Operation.REFUND, send, deadline=self._psp_deadline(), records=calls
            )
        except PspFailure as failure:
            if failure.kind is FailureKind.RETRYABLE_SAFE:
                await self._refund_not_sent(tenant, record.payment_id, refund_id, calls, key)
                raise errors.psp_unavailable(Operation.REFUND.value) from None
            return await self._refund_failed(
                tenant, record, refund_id, failure, calls=calls, key=key
            )
        reference = str(getattr(result, "psp_reference", ""))
        ops = [
            LedgerOp(
                kind="refund_entry",
                step=key,
                amount_minor=refund.amount.amount_minor,
                refund_id=refund_id,
            )
        ]
        pending = await self._post_ledger(record, ops)

        async def apply(uow: UnitOfWork) -> pb.RefundPaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            self._record_calls(
                current.payment, calls, refund.amount, key, refund=refund_id, reference=reference
            )
            current.payment.refund_succeeded(refund_id, reference, now)
            current.ledger_pending = [op.to_json() for op in pending]
            if pending:
                await self._owe_ledger(uow, current, now)
            await uow.payments.save(
                current, operation="REFUND", request_id=key, amount_minor=refund.amount.amount_minor
            )
            await uow.publish([self._refunded_event(current, refund_id)])
            response = self._refund_response(current, refund_id)
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    async def _refund_not_sent(
        self,
        tenant: str,
        payment_id: str,
        refund_id: str,
        calls: list[CallRecord],
        key: str,
    ) -> None:
        """No PSP took the refund: the payment stays as it was (the refund is withdrawn, its
        attempts are kept); a retry with the same request_id asks for it again."""

        async def apply(uow: UnitOfWork) -> None:
            current = await uow.payments.get(payment_id, for_update=True)
            assert current is not None
            refund = current.payment.refunds.pop(refund_id)
            self._record_calls(current.payment, calls, refund.amount, key)
            current.payment.update_time = _now()
            await uow.payments.save(current, operation="ATTEMPT", request_id=key, keep_busy=True)
            await uow.payments.withdraw_refund(payment_id, refund_id)

        await self._runner.run(tenant, apply)

    @staticmethod
    def _refund_response(record: PaymentRecord, refund_id: str) -> pb.RefundPaymentResponse:
        return pb.RefundPaymentResponse(
            refund=messages.refund(record, record.payment.refunds[refund_id]),
            payment=messages.payment(record),
        )

    @staticmethod
    def _refunded_event(record: PaymentRecord, refund_id: str) -> tuple[Message, str]:
        return ev.PaymentRefunded(
            payment=messages.payment(record),
            refund=messages.refund(record, record.payment.refunds[refund_id]),
            amount_refunded=messages.money(record.payment.amount_refunded),
            event_time=messages.timestamp(record.payment.update_time),
        ), record.name

    async def _refund_failed(
        self,
        tenant: str,
        record: PaymentRecord,
        refund_id: str,
        failure: PspFailure,
        *,
        calls: list[CallRecord],
        key: str,
    ) -> pb.RefundPaymentResponse:
        async def apply(uow: UnitOfWork) -> pb.RefundPaymentResponse:
            now = _now()
            current = await uow.payments.get(record.payment_id, for_update=True)
            assert current is not None
            refund = current.payment.refunds[refund_id]
            self._record_calls(current.payment, calls, refund.amount, key, refund=refund_id)
            events: list[tuple[Message, str]]
            if failure.kind is FailureKind.AMBIGUOUS:
                await uow.payments.save(current, operation="REFUND", request_id=key)
                await self._mark_unresolved(uow, current, now)
                events = [self._unknown_event(current)]
            else:
                payment_failure = self._failure_of(failure)
                current.payment.refund_failed(refund_id, payment_failure, now)
                await uow.payments.save(current, operation="REFUND", request_id=key)
                events = [self._refund_failed_event(current, refund_id, payment_failure)]
            await uow.publish(events)
            response = self._refund_response(current, refund_id)
            await uow.idempotency.complete(key, response.SerializeToString(), now)
            return response

        return await self._runner.run(tenant, apply)

    @staticmethod
    def _refund_failed_event(
        record: PaymentRecord, refund_id: str, failure: PaymentFailure
    ) -> tuple[Message, str]:
        return ev.PaymentFailed(
            payment=messages.payment(record),
            operation=messages.operation(Operation.REFUND),
            failure=messages.failure(failure),
            refund=messages.refund(record, record.payment.refunds[refund_id]),
            event_time=messages.timestamp(record.payment.update_time),
        ), record.name

    def _guarded(self, psp: str) -> GuardedPsp:
        guarded = self._psps.get(psp)
        if guarded is None:
            raise errors.unknown_psp(psp)
        return guarded

    # -- unknown outcomes ----------------------------------------------------------------

    async def resolve(self, ref: PaymentRef) -> bool:
        """Ask the PSP what an unknown call did and apply it; True once resolved."""
        record = await self._runner.run(ref.tenant, lambda uow: uow.payments.get(ref.payment_id))
        if record is not None and not await self._flush_ledger(record, keep_busy=True):
            return False  # the ledger is still away; the queue entry stays, postponed
        if record is None or record.payment.ambiguous_outcome is None:
            await self._runner.run_service_wide(lambda uow: uow.service_wide.resolved(ref))
            return True
        outcome = record.payment.ambiguous_outcome
        guarded = self._psps.get(outcome.psp)
        if guarded is None:
            return False
        calls: list[CallRecord] = []
        deadline = Deadline.after(self._options.psp_deadline_seconds)
        try:
            if outcome.operation is Operation.AUTHORIZE:
                found = await resolve_authorization(guarded, record.request_id, deadline, calls)
            else:

                async def send(attempt: Deadline) -> PspPayment:
                    return await guarded.connector.retrieve(
                        record.payment.psp_reference, deadline=attempt
                    )

                found = await guarded.call(
                    Operation.STATUS_INQUIRY, send, deadline=deadline, records=calls
                )
        except PspFailure:
            await self._inquiry_failed(ref, calls, outcome)
            return False
        if found is not None and found.status is PspPaymentStatus.PROCESSING:
            await self._inquiry_failed(ref, calls, outcome)
            return False
        step = self._step_of(record, outcome)
        ops, hold = self._resolution_ops(record, outcome, found, step)
        pending = await self._post_ledger(record, ops)
        await self._runner.run(
            ref.tenant,
            lambda uow: self._apply_resolution(
                uow, ref, outcome, found=found, calls=calls, hold=hold, pending=pending
            ),
        )
        return not pending

    @staticmethod
    def _step_of(record: PaymentRecord, outcome: AmbiguousOutcome) -> str:
        """The request id of the unresolved call (its PSP idempotency key)."""
        for attempt in record.payment.attempts:
            if attempt.attempt_number == outcome.attempt_number:
                return attempt.psp_idempotency_key
        return record.request_id

    def _resolved_effect(
        self, record: PaymentRecord, outcome: AmbiguousOutcome, found: PspPayment | None
    ) -> bool:
        """Whether the unresolved call took effect at the PSP."""
        payment = record.payment
        if found is None:
            return False
        match outcome.operation:
            case Operation.AUTHORIZE:
                return found.status in (PspPaymentStatus.AUTHORIZED, PspPaymentStatus.CAPTURED)
            case Operation.CAPTURE:
                captured = payment.amount_captured + outcome.amount
                return found.amount_captured.amount_minor >= captured.amount_minor
            case Operation.VOID:
                return found.status in (PspPaymentStatus.VOIDED, PspPaymentStatus.CAPTURED)
            case Operation.REFUND:
                refunded = payment.amount_refunded + outcome.amount
                return found.amount_refunded.amount_minor >= refunded.amount_minor
        return False

    def _resolution_ops(
        self,
        record: PaymentRecord,
        outcome: AmbiguousOutcome,
        found: PspPayment | None,
        step: str,
    ) -> tuple[list[LedgerOp], tuple[str, int]]:
        current = (record.ledger_hold_id, record.ledger_hold_count)
        if not self._resolved_effect(record, outcome, found):
            return [], current
        assert found is not None
        match outcome.operation:
            case Operation.AUTHORIZE:
                return self._authorization_ops(record, found, step)
            case Operation.CAPTURE:
                final = found.status is PspPaymentStatus.CAPTURED
                return self._capture_ops(record, outcome.amount, step, final=final)
            case Operation.VOID:
                ops = [LedgerOp(kind="void", step=step, hold=record.ledger_hold_id)]
                return (ops if record.ledger_hold_id else []), ("", record.ledger_hold_count)
            case Operation.REFUND:
                refund = LedgerOp(
                    kind="refund_entry",
                    step=step,
                    amount_minor=outcome.amount.amount_minor,
                    refund_id=outcome.refund,
                )
                return [refund], current
        return [], current

    async def _apply_resolution(
        self,
        uow: UnitOfWork,
        ref: PaymentRef,
        outcome: AmbiguousOutcome,
        *,
        found: PspPayment | None,
        calls: list[CallRecord],
        hold: tuple[str, int],
        pending: list[LedgerOp],
    ) -> None:
        now = _now()
        record = await uow.payments.get(ref.payment_id, for_update=True)
        if record is None or record.payment.ambiguous_outcome != outcome:
            return  # resolved meanwhile (webhook and resolver raced)
        payment = record.payment
        step = self._step_of(record, outcome)
        self._record_calls(payment, calls, outcome.amount, step, refund=outcome.refund)
        took_effect = self._resolved_effect(record, outcome, found)
        payment.outcome_resolved()
        events: list[tuple[Message, str]] = []
        operation = outcome.operation
        if took_effect and found is not None:
            match operation:
                case Operation.AUTHORIZE:
                    self._apply_authorization(record, found, hold, now)
                    events += self._authorized_events(record, found)
                case Operation.CAPTURE:
                    final = found.status is PspPaymentStatus.CAPTURED
                    payment.captured(outcome.amount, final=final, now=now)
                    record.ledger_hold_id, record.ledger_hold_count = hold
                    events.append(self._captured_event(record, outcome.amount, ""))
                case Operation.VOID:
                    released = payment.capturable
                    payment.voided(now)
                    record.ledger_hold_id = ""
                    events.append(self._voided_event(record, released, "resolved by inquiry"))
                case Operation.REFUND:
                    payment.refund_succeeded(outcome.refund, "", now)
                    events.append(self._refunded_event(record, outcome.refund))
        else:
            failure = PaymentFailure(
                code=FailureCode.PROCESSING_ERROR,
                reason="the PSP has no record of the operation",
                retryable=True,
                psp=outcome.psp,
            )
            if operation is Operation.AUTHORIZE:
                payment.authorization_failed(failure, now)
                events.append(
                    (
                        ev.PaymentAuthorizationFailed(
                            payment=messages.payment(record),
                            failure=messages.failure(failure),
                            event_time=messages.timestamp(now),
                        ),
                        record.name,
                    )
                )
            else:
                if operation is Operation.REFUND:
                    payment.refund_failed(outcome.refund, failure, now)
                payment.update_time = now
                events.append(
                    (
                        ev.PaymentFailed(
                            payment=messages.payment(record),
                            operation=messages.operation(operation),
                            failure=messages.failure(failure),
                            event_time=messages.timestamp(now),
                        ),
                        record.name,
                    )
                )
        record.ledger_pending = [op.to_json() for op in pending]
        await uow.payments.save(record, operation=f"RESOLVE_{operation.value}", request_id=step)
        if pending:
            await self._owe_ledger(uow, record, now)
        else:
            await uow.service_wide.resolved(ref)
        await uow.publish([(self._refresh(m, record), s) for m, s in events])

    async def _inquiry_failed(
        self, ref: PaymentRef, calls: list[CallRecord], outcome: AmbiguousOutcome
    ) -> None:
        async def apply(uow: UnitOfWork) -> None:
            now = _now()
            record = await uow.payments.get(ref.payment_id, for_update=True)
            if record is None or record.payment.ambiguous_outcome != outcome:
                return
            step = self._step_of(record, outcome)
            self._record_calls(record.payment, calls, outcome.amount, step, refund=outcome.refund)
            record.payment.inquiry_made()
            record.payment.update_time = now
            await uow.payments.save(record, operation="STATUS_INQUIRY", request_id=None)
            await self._mark_unresolved(uow, record, now)

        await self._runner.run(ref.tenant, apply)

    async def resolve_due(
        self, limit: int = 50, psp: str | None = None, *, due_only: bool = True
    ) -> int:
        """Resolve the unknown outcomes due now (or all of `psp`'s); how many were resolved."""
        now = _now() if due_only else None
        due = await self._runner.run_service_wide(lambda uow: uow.service_wide.due(now, limit, psp))
        return await self._resolve_each(due)

    async def _resolve_each(self, due: list[PaymentRef]) -> int:
        resolved = 0
        for ref in due:
            try:
                resolved += await self.resolve(ref)
            except DomainError as error:  # e.g. the ledger is down: try again later
                log.warning("resolving an unknown outcome failed: %s", error.reason)
        return resolved

    # -- authorization expiry ------------------------------------------------------------

    async def expire_due(self, limit: int = 50) -> int:
        """Expire the authorizations that lapsed; how many payments moved."""
        now = _now()
        due = await self._runner.run_service_wide(lambda uow: uow.service_wide.expired(now, limit))
        moved = 0
        for ref in due:
            try:
                moved += await self._expire(ref)
            except DomainError as error:
                log.warning("expiring an authorization failed: %s", error.reason)
        return moved

    async def _expire(self, ref: PaymentRef) -> bool:
        """EXPIRED (nothing captured) or CAPTURED (the captured part stays); the hold of the
        rest is released in the ledger. Waits while a request or an unknown outcome holds it."""
        step = ledger_request_id(ref.tenant, ref.payment_id, "expire")

        async def start(uow: UnitOfWork) -> PaymentRecord | None:
            record = await uow.payments.get(ref.payment_id, for_update=True)
            if record is None:
                return None
            payment = record.payment
            if payment.expire_time is None or payment.expire_time > _now():
                return None
            if payment.outcome_unknown or not await uow.payments.claim_busy(
                ref.payment_id, step, _now(), self._options.lease_seconds
            ):
                return None  # the next round looks again
            record.busy_request_id = step
            return record

        record = await self._runner.run(ref.tenant, start)
        if record is None:
            return False
        ops = [LedgerOp(kind="void", step=step, hold=record.ledger_hold_id)]
        pending = await self._post_ledger(record, ops if record.ledger_hold_id else [])

        async def apply(uow: UnitOfWork) -> None:
            now = _now()
            current = await uow.payments.get(ref.payment_id, for_update=True)
            assert current is not None
            released = current.payment.capturable
            current.payment.expired(now)
            current.ledger_hold_id = ""
            current.ledger_pending = [op.to_json() for op in pending]
            if pending:
                await self._owe_ledger(uow, current, now)
            await uow.payments.save(
                current, operation="EXPIRE", request_id=step, amount_minor=released.amount_minor
            )
            await uow.publish([self._voided_event(current, released, "authorization expired")])

        try:
            await self._runner.run(ref.tenant, apply)
        except BaseException:
            await self._release(ref.tenant, ref.payment_id, step)
            raise
        return True

    # -- webhooks ------------------------------------------------------------------------

    async def handle_webhook_request(
        self, request: pb.HandlePspWebhookRequest
    ) -> pb.HandlePspWebhookResponse:
        """The RPC: as `handle_webhook`, and with a request_id the first answer is replayed
        (a changed request under the same id is refused)."""
        if not request.request_id:
            return await self.handle_webhook(request.psp, request.payload, request.signature)
        self._authentic(request.psp, request.payload, request.signature)
        digest = fingerprint(request)
        key = request.request_id
        seen = await self._runner.run_service_wide(
            lambda uow: uow.service_wide.webhook_request(key)
        )
        if seen is None:
            answer = await self.handle_webhook(request.psp, request.payload, request.signature)

            async def remember(uow: UnitOfWork) -> tuple[bytes, bytes] | None:
                await uow.service_wide.remember_webhook_request(
                    key, digest, answer.SerializeToString()
                )
                return await uow.service_wide.webhook_request(key)

            seen = await self._runner.run_service_wide(remember)
            assert seen is not None
        if seen[0] != digest:
            raise IdempotencyKeyReused(key)
        return pb.HandlePspWebhookResponse.FromString(seen[1])

    def _authentic(self, psp: str, payload: bytes, signature: str) -> None:
        secret = self._secrets.get(psp)
        if secret is None or psp not in self._psps:
            raise errors.unknown_psp(psp)
        verify(
            secret,
            payload,
            signature,
            now=time.time(),
            tolerance=self._options.webhook_tolerance_seconds,
        )

    async def handle_webhook(
        self, psp: str, payload: bytes, signature: str
    ) -> pb.HandlePspWebhookResponse:
        self._authentic(psp, payload, signature)
        delivery = self._parse_webhook(psp, payload)
        ignored = not delivery.event_type.startswith(_ACTED_ON)

        async def record(uow: UnitOfWork) -> tuple[bool, PaymentRef | None, list[PaymentRef]]:
            ref, queued = None, False
            if delivery.psp_reference:
                ref, queued = await uow.service_wide.payment_and_queue(psp, delivery.psp_reference)
            fresh = await uow.service_wide.record_delivery(
                delivery, ref, ignored=ignored, now=_now()
            )
            if not fresh:
                seen = await uow.service_wide.delivery(psp, delivery.event_id)
                return False, seen[0] if seen else ref, []
            if ignored:
                return True, ref, []
            # The event is a nudge, whatever its order: the PSP is asked for the truth of any
            # unknown outcome; known outcomes came with the PSP's synchronous answers. So only
            # a payment the resolver has work for is looked at (read in this transaction,
            # not in one more); an event naming no known payment nudges all of the PSP's.
            if ref is not None:
                return True, ref, [ref] if queued else []
            return True, None, await uow.service_wide.due(None, 20, psp)

        fresh, ref, nudged = await self._runner.run_service_wide(record)
        name = f"tenants/{ref.tenant}/payments/{ref.payment_id}" if ref else ""
        if ref is not None:
            for queued in nudged:
                await self.resolve(queued)
        else:
            await self._resolve_each(nudged)
        return pb.HandlePspWebhookResponse(
            event_id=delivery.event_id, duplicate=not fresh, ignored=ignored, payment=name
        )

    @staticmethod
    def _parse_webhook(psp: str, payload: bytes) -> WebhookDelivery:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.webhook_payload_invalid("not UTF-8") from None
        if looks_like_card_number(text):
            raise errors.invalid_field("payload", "must not contain card data")
        try:
            body = json.loads(text)
        except ValueError:
            raise errors.webhook_payload_invalid("not JSON") from None
        if not isinstance(body, dict):
            raise errors.webhook_payload_invalid("not an object")
        event_id, event_type, data = body.get("id"), body.get("type"), body.get("data")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:  # noqa: PLR2004
            raise errors.webhook_payload_invalid("id missing")
        if not isinstance(event_type, str) or not isinstance(data, dict):
            raise errors.webhook_payload_invalid("type or data missing")
        # The sandbox puts the object in `data`; Stripe in `data.object`. A refund or charge
        # names its payment (`authorization` / `payment_intent`); a payment is its own `id`.
        subject = data["object"] if isinstance(data.get("object"), dict) else data
        reference = (
            subject.get("authorization") or subject.get("payment_intent") or subject.get("id", "")
        )
        if not isinstance(reference, str):
            raise errors.webhook_payload_invalid("reference is not a string")
        return WebhookDelivery(psp, event_id, event_type, reference)

    # -- routing -------------------------------------------------------------------------

    async def routing(self, tenant: str) -> StoredRouting:
        return await self._runner.run(tenant, lambda uow: uow.routing.get())

    async def update_routing(
        self,
        tenant: str,
        config: RoutingConfig,
        descriptions: dict[str, str],
        version: int | None,
        request: pb.UpdateRoutingConfigRequest,
    ) -> pb.UpdateRoutingConfigResponse:
        for psp in {p for rule in config.rules for p in rule.psps} | set(config.default_psps):
            if psp not in self._psps:
                raise errors.routing_config_invalid(psp)

        async def start(uow: UnitOfWork) -> pb.UpdateRoutingConfigResponse:
            now = _now()
            if version is None:
                raise errors.etag_mismatch()
            stored = await uow.routing.put(config, descriptions, version, now)
            if stored is None:
                raise errors.etag_mismatch()
            response = pb.UpdateRoutingConfigResponse(
                routing_config=messages.routing_config(
                    tenant, stored.config, stored.descriptions, stored.version, stored.update_time
                )
            )
            await uow.idempotency.complete(request.request_id, response.SerializeToString(), now)
            return response

        async def finish(
            response: pb.UpdateRoutingConfigResponse,
        ) -> pb.UpdateRoutingConfigResponse:
            return response

        return await self._idempotent(
            tenant,
            "UpdateRoutingConfig",
            request,
            pb.UpdateRoutingConfigResponse,
            start=start,
            finish=finish,
        )
