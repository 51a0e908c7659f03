"""Service-wide tables used before a tenant is known: PSP references (webhook routing),
webhook deliveries (dedupe by event id) and unresolved PSP outcomes (the resolver's queue)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.payments.storage.sql import Sql, query

# The payment a reference belongs to, and whether the resolver has work queued for it (an
# unknown outcome or owed ledger movements), in one round trip.
_REFERENCE_AND_QUEUE = query(
    "SELECT r.tenant_id, r.payment_id, EXISTS (SELECT 1 FROM unresolved_outcomes u"
    " WHERE u.tenant_id = r.tenant_id AND u.payment_id = r.payment_id) AS queued"
    " FROM psp_references r WHERE r.psp = :psp AND r.psp_reference = :reference"
)
_RECORD_EVENT = query(
    "INSERT INTO webhook_events (psp, event_id, event_type, psp_reference, tenant_id,"
    " payment_id, ignored, receive_time)"
    " VALUES (:psp, :event_id, :event_type, :reference, :tenant, :payment, :ignored, :now)"
    " ON CONFLICT (psp, event_id) DO NOTHING RETURNING event_id"
)
_EVENT = query(
    "SELECT payment_id, tenant_id, ignored FROM webhook_events"
    " WHERE psp = :psp AND event_id = :event_id"
)
_REMEMBER_REQUEST = query(
    "INSERT INTO webhook_requests (request_id, fingerprint, response)"
    " VALUES (:request_id, :fingerprint, :response) ON CONFLICT (request_id) DO NOTHING"
)
_REQUEST = query(
    "SELECT fingerprint, response FROM webhook_requests WHERE request_id = :request_id"
)
_MARK_UNRESOLVED = query(
    "INSERT INTO unresolved_outcomes (tenant_id, payment_id, psp, operation, attempt_number,"
    " next_resolution_time, create_time)"
    " VALUES (:tenant, :payment, :psp, :operation, :attempt, :due, :now)"
    " ON CONFLICT (tenant_id, payment_id) DO UPDATE SET psp = EXCLUDED.psp,"
    " operation = EXCLUDED.operation, attempt_number = EXCLUDED.attempt_number,"
    " next_resolution_time = EXCLUDED.next_resolution_time"
)
_RESOLVED = query(
    "DELETE FROM unresolved_outcomes WHERE tenant_id = :tenant AND payment_id = :payment"
)
_DUE = query(
    "SELECT tenant_id, payment_id, psp FROM unresolved_outcomes"
    " WHERE (CAST(:now AS timestamptz) IS NULL OR next_resolution_time <= :now)"
    " AND (CAST(:psp AS text) IS NULL OR psp = :psp)"
    " ORDER BY next_resolution_time LIMIT :limit"
)
_EXPIRED = query(
    "SELECT tenant_id, payment_id FROM expiring_authorizations WHERE expire_time <= :now"
    " ORDER BY expire_time LIMIT :limit"
)
_POSTPONE = query(
    "UPDATE unresolved_outcomes SET next_resolution_time = :due"
    " WHERE tenant_id = :tenant AND payment_id = :payment"
)


@dataclass(frozen=True, slots=True)
class PaymentRef:
    tenant: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    psp: str
    event_id: str
    event_type: str
    psp_reference: str


class SqlServiceWide:
    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    async def payment_and_queue(self, psp: str, reference: str) -> tuple[PaymentRef | None, bool]:
        """The payment of a PSP reference (None if unknown) and whether it is queued for the
        resolver (unresolved_outcomes holds every payment with an unknown outcome or owed
        ledger movements, written in the same transaction as the payment)."""
        row = await self._sql.first(_REFERENCE_AND_QUEUE, {"psp": psp, "reference": reference})
        if row is None:
            return None, False
        return PaymentRef(row.tenant_id, row.payment_id), bool(row.queued)

    async def record_delivery(
        self, delivery: WebhookDelivery, payment: PaymentRef | None, *, ignored: bool, now: datetime
    ) -> bool:
        """Remember the event id; False if it was seen before (a duplicate delivery)."""
        row = await self._sql.first(
            _RECORD_EVENT,
            {
                "psp": delivery.psp,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "reference": delivery.psp_reference,
                "tenant": payment.tenant if payment else None,
                "payment": payment.payment_id if payment else None,
                "ignored": ignored,
                "now": now,
            },
        )
        return row is not None

    async def delivery(self, psp: str, event_id: str) -> tuple[PaymentRef | None, bool] | None:
        row = await self._sql.first(_EVENT, {"psp": psp, "event_id": event_id})
        if row is None:
            return None
        ref = PaymentRef(row.tenant_id, row.payment_id) if row.payment_id else None
        return ref, bool(row.ignored)

    async def webhook_request(self, request_id: str) -> tuple[bytes, bytes] | None:
        """(fingerprint, first response) of a webhook call with this request_id, if any."""
        row = await self._sql.first(_REQUEST, {"request_id": uuid.UUID(request_id)})
        return None if row is None else (bytes(row.fingerprint), bytes(row.response))

    async def remember_webhook_request(
        self, request_id: str, fingerprint: bytes, response: bytes
    ) -> None:
        await self._sql.execute(
            _REMEMBER_REQUEST,
            {"request_id": uuid.UUID(request_id), "fingerprint": fingerprint, "response": response},
        )

    async def mark_unresolved(
        self,
        ref: PaymentRef,
        *,
        psp: str,
        operation: str,
        attempt: int,
        due: datetime,
        now: datetime,
    ) -> None:
        await self._sql.execute(
            _MARK_UNRESOLVED,
            {
                "tenant": ref.tenant,
                "payment": ref.payment_id,
                "psp": psp,
                "operation": operation,
                "attempt": attempt,
                "due": due,
                "now": now,
            },
        )

    async def resolved(self, ref: PaymentRef) -> None:
        await self._sql.execute(_RESOLVED, {"tenant": ref.tenant, "payment": ref.payment_id})

    async def due(
        self, now: datetime | None, limit: int, psp: str | None = None
    ) -> list[PaymentRef]:
        """Unresolved outcomes due at `now` (all of them when None), oldest due first."""
        rows = await self._sql.all(_DUE, {"now": now, "limit": limit, "psp": psp})
        return [PaymentRef(row.tenant_id, row.payment_id) for row in rows]

    async def expired(self, now: datetime, limit: int) -> list[PaymentRef]:
        """Capturable payments whose authorization lapsed by `now`, oldest first."""
        rows = await self._sql.all(_EXPIRED, {"now": now, "limit": limit})
        return [PaymentRef(row.tenant_id, row.payment_id) for row in rows]

    async def postpone(self, ref: PaymentRef, seconds: float, now: datetime) -> None:
        await self._sql.execute(
            _POSTPONE,
            {
                "tenant": ref.tenant,
                "payment": ref.payment_id,
                "due": now + timedelta(seconds=seconds),
            },
        )
