"""A stored payment: the aggregate plus what the service keeps beside it (immutable request
fields, the ledger hold it reserves funds with, the version, the request working on it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.payments.domain.payment import Payment
from services.payments.domain.routing import RoutingHints
from services.payments.domain.states import PaymentState


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    email: str = ""
    display_name: str = ""


@dataclass(slots=True, kw_only=True)
class PaymentRecord:
    tenant: str
    payment: Payment
    request_id: str
    order: str
    customer: Customer | None = None
    hints: RoutingHints = field(default_factory=RoutingHints)
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    ledger_hold_id: str = ""
    ledger_hold_count: int = 0
    ledger_pending: list[dict[str, object]] = field(default_factory=list)
    """Ledger movements the PSP already made real but the ledger has not taken yet (JSON,
    see services/payments/ledger.py LedgerOp), performed in order before anything else."""
    version: int = 0
    """0 before the first insert."""
    busy_request_id: str | None = None
    # What is already stored, so a save writes only what changed since the load.
    stored_state: PaymentState | None = None
    stored_reference: str = ""
    stored_attempts: int = 0
    stored_transitions: int = 0

    @property
    def payment_id(self) -> str:
        return self.payment.payment_id

    @property
    def name(self) -> str:
        return f"tenants/{self.tenant}/payments/{self.payment.payment_id}"

    def refund_name(self, refund_id: str) -> str:
        return f"{self.name}/refunds/{refund_id}"
