"""Payments, their transitions, attempts and refunds as rows; a save writes only the changes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from services.payments.domain.attempts import (
    AmbiguousOutcome,
    Attempt,
    AttemptOutcome,
    ErrorClass,
    FailureCode,
    Operation,
    PaymentFailure,
)
from services.payments.domain.methods import CaptureMethod, PaymentMethod, PaymentMethodType
from services.payments.domain.money import Money
from services.payments.domain.payment import Payment
from services.payments.domain.records import Customer, PaymentRecord
from services.payments.domain.refunds import Refund, RefundReason, RefundState
from services.payments.domain.routing import RoutingHints
from services.payments.domain.states import CAPTURABLE, PaymentState
from services.payments.storage.sql import Sql, query

_COLUMNS = (
    "payment_id, CAST(request_id AS text) AS request_id, order_name, customer, currency_code,"
    " amount_minor, amount_authorized_minor, amount_captured_minor, amount_refunded_minor,"
    " capture_method, method_token, method_type, state, psp, psp_reference, failure, ambiguous,"
    " routing_hints, description, metadata, ledger_hold_id, ledger_hold_count, ledger_pending,"
    " CAST(busy_request_id AS text) AS busy_request_id, busy_until, version, create_time,"
    " update_time, expire_time,"
    # Attempts, refunds and the transition count in the same round trip.
    " (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.attempt_number), '[]'::jsonb)"
    "  FROM payment_attempts a WHERE a.tenant_id = payments.tenant_id"
    "  AND a.payment_id = payments.payment_id) AS attempts_json,"
    " (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.create_time, r.refund_id), '[]'::jsonb)"
    "  FROM refunds r WHERE r.tenant_id = payments.tenant_id"
    "  AND r.payment_id = payments.payment_id) AS refunds_json,"
    " (SELECT count(*) FROM payment_transitions t WHERE t.tenant_id = payments.tenant_id"
    "  AND t.payment_id = payments.payment_id) AS transitions"
)
# The f-strings below only splice in the constant column list; values are all parameters.
_FROM = f"SELECT {_COLUMNS} FROM payments WHERE tenant_id = :tenant"  # noqa: S608
_SELECT_ONE = f"{_FROM} AND payment_id = :id"
_GET = query(_SELECT_ONE)
_GET_FOR_UPDATE = query(f"{_SELECT_ONE} FOR UPDATE")
_BY_REQUEST = query(f"{_FROM} AND request_id = :request_id")
_INSERT = query(
    "INSERT INTO payments (tenant_id, payment_id, request_id, order_name, customer,"
    " currency_code, amount_minor, capture_method, method_token, method_type, state,"
    " routing_hints, description, metadata, busy_request_id, busy_until, create_time,"
    " update_time)"
    " VALUES (:tenant, :id, :request_id, :order, :customer, :currency, :amount, :capture_method,"
    " :token, :method_type, :state, :hints, :description, :metadata, :busy, :busy_until,"
    " :now, :now)"
    " ON CONFLICT DO NOTHING RETURNING version"
)
_UPDATE = query(
    "UPDATE payments SET amount_authorized_minor = :authorized, amount_captured_minor = :captured,"
    " amount_refunded_minor = :refunded, state = :state, psp = :psp, psp_reference = :reference,"
    " failure = :failure, ambiguous = :ambiguous, ledger_hold_id = :hold,"
    " ledger_hold_count = :holds, ledger_pending = :pending,"
    # keep_busy: the request working on the payment keeps it (its lease unchanged).
    " busy_request_id = CASE WHEN :keep_busy THEN busy_request_id END,"
    " busy_until = CASE WHEN :keep_busy THEN busy_until END,"
    " version = version + 1, update_time = :update_time, expire_time = :expire_time"
    " WHERE tenant_id = :tenant AND payment_id = :id AND version = :version RETURNING version"
)
_CLAIM_BUSY = query(
    "UPDATE payments SET busy_request_id = :request_id, busy_until = :until"
    " WHERE tenant_id = :tenant AND payment_id = :id"
    " AND (busy_request_id IS NULL OR busy_request_id = :request_id OR busy_until < :now)"
    " RETURNING version"
)
_RELEASE_BUSY = query(
    "UPDATE payments SET busy_request_id = NULL, busy_until = NULL"
    " WHERE tenant_id = :tenant AND payment_id = :id AND busy_request_id = :request_id"
)
_INSERT_TRANSITION = query(
    "INSERT INTO payment_transitions (tenant_id, payment_id, sequence, from_state, to_state,"
    " operation, request_id, amount_minor, create_time)"
    " VALUES (:tenant, :id, :sequence, :from_state, :to_state, :operation, :request_id,"
    " :amount, :now)"
)
_INSERT_ATTEMPT = query(
    "INSERT INTO payment_attempts (tenant_id, payment_id, attempt_number, operation, psp,"
    " outcome, error_class, failure_code, psp_code, psp_reference, currency_code, amount_minor,"
    " refund_id, psp_idempotency_key, start_time, end_time)"
    " VALUES (:tenant, :id, :number, :operation, :psp, :outcome, :error_class, :failure_code,"
    " :psp_code, :reference, :currency, :amount, :refund, :key, :start, :end)"
)
_UPSERT_REFUND = query(
    "INSERT INTO refunds (tenant_id, payment_id, refund_id, request_id, currency_code,"
    " amount_minor, reason, description, state, psp, psp_reference, failure, outcome_unknown,"
    " create_time, update_time)"
    " VALUES (:tenant, :id, :refund_id, :request_id, :currency, :amount, :reason, :description,"
    " :state, :psp, :reference, :failure, :unknown, :create_time, :update_time)"
    " ON CONFLICT (tenant_id, payment_id, refund_id) DO UPDATE SET state = EXCLUDED.state,"
    " psp_reference = EXCLUDED.psp_reference, failure = EXCLUDED.failure,"
    " outcome_unknown = EXCLUDED.outcome_unknown, update_time = EXCLUDED.update_time"
)
_EXPIRES = query(
    "INSERT INTO expiring_authorizations (tenant_id, payment_id, expire_time)"
    " VALUES (:tenant, :id, :expire_time) ON CONFLICT (tenant_id, payment_id)"
    " DO UPDATE SET expire_time = EXCLUDED.expire_time"
)
_NO_LONGER_EXPIRES = query(
    "DELETE FROM expiring_authorizations WHERE tenant_id = :tenant AND payment_id = :id"
)
_REFUND_REQUESTS = query(
    "SELECT refund_id, CAST(request_id AS text) AS request_id FROM refunds"
    " WHERE tenant_id = :tenant AND payment_id = :id"
)
_PAGE = query(
    f"{_FROM}"
    " AND (CAST(:order AS text) IS NULL OR order_name = :order)"
    " AND (CAST(:state AS text) IS NULL OR state = :state)"
    " AND (NOT :unknown_only OR ambiguous IS NOT NULL)"
    " AND (CAST(:after_time AS timestamptz) IS NULL"
    "      OR (create_time, payment_id) < (:after_time, :after_id))"
    " ORDER BY create_time DESC, payment_id DESC LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class PageFilter:
    order: str | None = None
    state: PaymentState | None = None
    outcome_unknown_only: bool = False


def _failure_json(failure: PaymentFailure | None) -> Jsonb | None:
    if failure is None:
        return None
    return Jsonb(
        {
            "code": failure.code.value,
            "reason": failure.reason,
            "retryable": failure.retryable,
            "psp": failure.psp,
            "psp_code": failure.psp_code,
        }
    )


def _failure(data: dict[str, Any] | None) -> PaymentFailure | None:
    if data is None:
        return None
    return PaymentFailure(
        code=FailureCode(data["code"]),
        reason=str(data["reason"]),
        retryable=bool(data["retryable"]),
        psp=str(data.get("psp", "")),
        psp_code=str(data.get("psp_code", "")),
    )


def _ambiguous_json(outcome: AmbiguousOutcome | None) -> Jsonb | None:
    if outcome is None:
        return None
    return Jsonb(
        {
            "operation": outcome.operation.value,
            "psp": outcome.psp,
            "amount_minor": outcome.amount.amount_minor,
            "attempt_number": outcome.attempt_number,
            "start_time": outcome.start_time.isoformat(),
            "psp_reference": outcome.psp_reference,
            "refund": outcome.refund,
            "resolution_attempts": outcome.resolution_attempts,
        }
    )


def _ambiguous(data: dict[str, Any] | None, currency: str) -> AmbiguousOutcome | None:
    if data is None:
        return None
    return AmbiguousOutcome(
        operation=Operation(data["operation"]),
        psp=str(data["psp"]),
        amount=Money(int(data["amount_minor"]), currency),
        attempt_number=int(data["attempt_number"]),
        start_time=datetime.fromisoformat(data["start_time"]),
        psp_reference=str(data.get("psp_reference", "")),
        refund=str(data.get("refund", "")),
        resolution_attempts=int(data.get("resolution_attempts", 0)),
    )


class SqlPayments:
    def __init__(self, sql: Sql, tenant: str) -> None:
        self._sql = sql
        self._tenant = tenant

    @property
    def tenant(self) -> str:
        return self._tenant

    async def insert(self, record: PaymentRecord, now: datetime, busy_seconds: float) -> bool:
        """Store a new payment (REQUIRES_AUTHORIZATION, busy with its request); False if the
        id or the request id is taken."""
        payment = record.payment
        customer = record.customer
        found = await self._sql.first(
            _INSERT,
            {
                "tenant": self._tenant,
                "id": payment.payment_id,
                "request_id": uuid.UUID(record.request_id),
                "order": record.order,
                "customer": Jsonb(
                    {
                        "customer_id": customer.customer_id,
                        "email": customer.email,
                        "display_name": customer.display_name,
                    }
                )
                if customer
                else None,
                "currency": payment.currency,
                "amount": payment.amount.amount_minor,
                "capture_method": payment.capture_method.value,
                "token": payment.payment_method.token,
                "method_type": payment.payment_method.type.value,
                "state": payment.state.value,
                "hints": Jsonb(
                    {
                        "preferred": list(record.hints.preferred_psps),
                        "excluded": list(record.hints.excluded_psps),
                    }
                ),
                "description": record.description,
                "metadata": Jsonb(record.metadata),
                "busy": uuid.UUID(record.request_id),
                "busy_until": _after(now, busy_seconds),
                "now": now,
            },
        )
        if found is None:
            return False
        await self._transition(
            record,
            None,
            payment.state,
            operation="CREATE",
            request_id=record.request_id,
            amount_minor=0,
            now=now,
        )
        record.version = found.version
        record.stored_state = payment.state
        record.busy_request_id = record.request_id
        return True

    async def get(self, payment_id: str, *, for_update: bool = False) -> PaymentRecord | None:
        row = await self._sql.first(
            _GET_FOR_UPDATE if for_update else _GET, {"tenant": self._tenant, "id": payment_id}
        )
        return None if row is None else await self._load(row)

    async def by_request(self, request_id: str) -> PaymentRecord | None:
        row = await self._sql.first(
            _BY_REQUEST, {"tenant": self._tenant, "request_id": uuid.UUID(request_id)}
        )
        return None if row is None else await self._load(row)

    async def claim_busy(
        self, payment_id: str, request_id: str, now: datetime, seconds: float
    ) -> bool:
        """Mark the payment as worked on by `request_id` unless another request holds it."""
        found = await self._sql.first(
            _CLAIM_BUSY,
            {
                "tenant": self._tenant,
                "id": payment_id,
                "request_id": uuid.UUID(request_id),
                "until": _after(now, seconds),
                "now": now,
            },
        )
        return found is not None

    async def release_busy(self, payment_id: str, request_id: str) -> None:
        await self._sql.execute(
            _RELEASE_BUSY,
            {"tenant": self._tenant, "id": payment_id, "request_id": uuid.UUID(request_id)},
        )

    async def withdraw_refund(self, payment_id: str, refund_id: str) -> None:
        """Remove a PENDING refund no PSP ever took (PSP_UNAVAILABLE)."""
        await self._sql.execute(
            query(
                "DELETE FROM refunds WHERE tenant_id = :tenant AND payment_id = :id"
                " AND refund_id = :refund AND state = 'PENDING'"
            ),
            {"tenant": self._tenant, "id": payment_id, "refund": refund_id},
        )

    async def refund_requests(self, payment_id: str) -> dict[str, str]:
        rows = await self._sql.all(_REFUND_REQUESTS, {"tenant": self._tenant, "id": payment_id})
        return {row.refund_id: row.request_id for row in rows}

    async def save(
        self,
        record: PaymentRecord,
        *,
        operation: str,
        request_id: str | None,
        amount_minor: int = 0,
        refund_requests: dict[str, str] | None = None,
        keep_busy: bool = False,
    ) -> None:
        """Write what changed since the load: the row (version-checked), a transition if the
        state moved, new attempts, and the refunds (`refund_requests`: refund id -> request)."""
        payment = record.payment
        now = payment.update_time
        found = await self._sql.first(
            _UPDATE,
            {
                "tenant": self._tenant,
                "id": payment.payment_id,
                "authorized": payment.amount_authorized.amount_minor,
                "captured": payment.amount_captured.amount_minor,
                "refunded": payment.amount_refunded.amount_minor,
                "state": payment.state.value,
                "psp": payment.psp,
                "reference": payment.psp_reference,
                "failure": _failure_json(payment.failure),
                "ambiguous": _ambiguous_json(payment.ambiguous_outcome),
                "hold": record.ledger_hold_id,
                "holds": record.ledger_hold_count,
                "pending": Jsonb(record.ledger_pending),
                "keep_busy": keep_busy,
                "update_time": now,
                "expire_time": payment.expire_time,
                "version": record.version,
            },
        )
        if found is None:
            raise RuntimeError(f"payment {payment.payment_id} changed under a row lock")
        record.version = found.version
        if not keep_busy:
            record.busy_request_id = None
        if record.stored_state is not None and payment.state is not record.stored_state:
            await self._transition(
                record,
                record.stored_state,
                payment.state,
                operation=operation,
                request_id=request_id,
                amount_minor=amount_minor,
                now=now,
            )
        if payment.state is not record.stored_state or payment.expire_time is not None:
            await self._track_expiry(payment)
        record.stored_state = payment.state
        for attempt in payment.attempts[record.stored_attempts :]:
            await self._insert_attempt(payment, attempt)
        record.stored_attempts = len(payment.attempts)
        requests = refund_requests or {}
        for refund in payment.refunds.values():
            await self._save_refund(payment, refund, requests.get(refund.refund_id))
        if payment.psp_reference and payment.psp_reference != record.stored_reference:
            record.stored_reference = payment.psp_reference
            await self._sql.execute(
                query(
                    "INSERT INTO psp_references (psp, psp_reference, tenant_id, payment_id)"
                    " VALUES (:psp, :reference, :tenant, :id) ON CONFLICT DO NOTHING"
                ),
                {
                    "psp": payment.psp,
                    "reference": payment.psp_reference,
                    "tenant": self._tenant,
                    "id": payment.payment_id,
                },
            )

    async def _track_expiry(self, payment: Payment) -> None:
        """Keep the sweeper's queue in step: queued while capturable with an expiry."""
        params = {"tenant": self._tenant, "id": payment.payment_id}
        if payment.state in CAPTURABLE and payment.expire_time is not None:
            await self._sql.execute(_EXPIRES, {**params, "expire_time": payment.expire_time})
        else:
            await self._sql.execute(_NO_LONGER_EXPIRES, params)

    async def page(
        self, where: PageFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[PaymentRecord]:
        rows = await self._sql.all(
            _PAGE,
            {
                "tenant": self._tenant,
                "order": where.order,
                "state": where.state.value if where.state else None,
                "unknown_only": where.outcome_unknown_only,
                "after_time": after[0] if after else None,
                "after_id": after[1] if after else "",
                "limit": limit,
            },
        )
        return [await self._load(row) for row in rows]

    # -- rows -> aggregate -------------------------------------------------------------------

    async def _load(self, row: Any) -> PaymentRecord:
        currency = row.currency_code
        payment = Payment(
            payment_id=row.payment_id,
            amount=Money(row.amount_minor, currency),
            payment_method=PaymentMethod(row.method_token, PaymentMethodType(row.method_type)),
            capture_method=CaptureMethod(row.capture_method),
            create_time=row.create_time,
            update_time=row.update_time,
            state=PaymentState(row.state),
            psp=row.psp,
            psp_reference=row.psp_reference,
            failure=_failure(row.failure),
            ambiguous_outcome=_ambiguous(row.ambiguous, currency),
            expire_time=row.expire_time,
        )
        payment.amount_authorized = Money(row.amount_authorized_minor, currency)
        payment.amount_captured = Money(row.amount_captured_minor, currency)
        payment.amount_refunded = Money(row.amount_refunded_minor, currency)
        for a in row.attempts_json:
            payment.attempts.append(
                Attempt(
                    attempt_number=a["attempt_number"],
                    operation=Operation(a["operation"]),
                    psp=a["psp"],
                    outcome=AttemptOutcome(a["outcome"]),
                    error_class=ErrorClass(a["error_class"]),
                    amount=Money(a["amount_minor"], currency),
                    psp_idempotency_key=a["psp_idempotency_key"],
                    start_time=datetime.fromisoformat(a["start_time"]),
                    end_time=datetime.fromisoformat(a["end_time"]),
                    failure_code=FailureCode(a["failure_code"]) if a["failure_code"] else None,
                    psp_code=a["psp_code"],
                    psp_reference=a["psp_reference"],
                    refund=a["refund_id"],
                )
            )
        for r in row.refunds_json:
            payment.refunds[r["refund_id"]] = Refund(
                refund_id=r["refund_id"],
                amount=Money(r["amount_minor"], currency),
                reason=RefundReason(r["reason"]),
                psp=r["psp"],
                create_time=datetime.fromisoformat(r["create_time"]),
                update_time=datetime.fromisoformat(r["update_time"]),
                description=r["description"],
                state=RefundState(r["state"]),
                psp_reference=r["psp_reference"],
                failure=_failure(r["failure"]),
                outcome_unknown=r["outcome_unknown"],
            )
        customer = row.customer
        hints = row.routing_hints or {}
        return PaymentRecord(
            tenant=self._tenant,
            payment=payment,
            request_id=row.request_id,
            order=row.order_name,
            customer=Customer(
                customer["customer_id"], customer.get("email", ""), customer.get("display_name", "")
            )
            if customer
            else None,
            hints=RoutingHints(tuple(hints.get("preferred", ())), tuple(hints.get("excluded", ()))),
            description=row.description,
            metadata=dict(row.metadata or {}),
            ledger_hold_id=row.ledger_hold_id,
            ledger_hold_count=row.ledger_hold_count,
            ledger_pending=list(row.ledger_pending or []),
            version=row.version,
            busy_request_id=row.busy_request_id,
            stored_state=payment.state,
            stored_reference=payment.psp_reference,
            stored_attempts=len(payment.attempts),
            stored_transitions=int(row.transitions),
        )

    async def _transition(
        self,
        record: PaymentRecord,
        from_state: PaymentState | None,
        to_state: PaymentState,
        *,
        operation: str,
        request_id: str | None,
        amount_minor: int,
        now: datetime,
    ) -> None:
        record.stored_transitions += 1
        await self._sql.execute(
            _INSERT_TRANSITION,
            {
                "tenant": self._tenant,
                "id": record.payment_id,
                "sequence": record.stored_transitions,
                "from_state": from_state.value if from_state else None,
                "to_state": to_state.value,
                "operation": operation,
                "request_id": uuid.UUID(request_id) if request_id else None,
                "amount": amount_minor,
                "now": now,
            },
        )

    async def _insert_attempt(self, payment: Payment, attempt: Attempt) -> None:
        await self._sql.execute(
            _INSERT_ATTEMPT,
            {
                "tenant": self._tenant,
                "id": payment.payment_id,
                "number": attempt.attempt_number,
                "operation": attempt.operation.value,
                "psp": attempt.psp,
                "outcome": attempt.outcome.value,
                "error_class": attempt.error_class.value,
                "failure_code": attempt.failure_code.value if attempt.failure_code else None,
                "psp_code": attempt.psp_code,
                "reference": attempt.psp_reference,
                "currency": attempt.amount.currency,
                "amount": attempt.amount.amount_minor,
                "refund": attempt.refund,
                "key": attempt.psp_idempotency_key,
                "start": attempt.start_time,
                "end": attempt.end_time,
            },
        )

    async def _save_refund(self, payment: Payment, refund: Refund, request_id: str | None) -> None:
        await self._sql.execute(
            _UPSERT_REFUND,
            {
                "tenant": self._tenant,
                "id": payment.payment_id,
                "refund_id": refund.refund_id,
                # Only a new refund's insert uses it; an update keeps the stored one.
                "request_id": uuid.UUID(request_id) if request_id else uuid.UUID(int=0),
                "currency": refund.amount.currency,
                "amount": refund.amount.amount_minor,
                "reason": refund.reason.value,
                "description": refund.description,
                "state": refund.state.value,
                "psp": refund.psp,
                "reference": refund.psp_reference,
                "failure": _failure_json(refund.failure),
                "unknown": refund.outcome_unknown,
                "create_time": refund.create_time,
                "update_time": refund.update_time,
            },
        )


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
