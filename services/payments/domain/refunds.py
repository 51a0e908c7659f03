"""A refund of part of a captured payment: pending at the PSP, then succeeded or failed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from services.payments.domain import errors
from services.payments.domain.attempts import PaymentFailure
from services.payments.domain.money import Money


class RefundState(enum.StrEnum):
    """Mirrors `RefundState`."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RefundReason(enum.StrEnum):
    """Mirrors `RefundReason`."""

    REQUESTED_BY_CUSTOMER = "REQUESTED_BY_CUSTOMER"
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"
    ORDER_CANCELED = "ORDER_CANCELED"
    PRODUCT_RETURNED = "PRODUCT_RETURNED"
    OTHER = "OTHER"


@dataclass(slots=True, kw_only=True)
class Refund:
    refund_id: str
    amount: Money
    reason: RefundReason
    psp: str
    create_time: datetime
    update_time: datetime
    description: str = ""
    state: RefundState = RefundState.PENDING
    psp_reference: str = ""
    failure: PaymentFailure | None = None
    outcome_unknown: bool = field(default=False)

    def succeed(self, psp_reference: str, now: datetime) -> None:
        self._finish("succeed", now)
        self.state = RefundState.SUCCEEDED
        self.psp_reference = psp_reference or self.psp_reference

    def fail(self, failure: PaymentFailure, now: datetime) -> None:
        self._finish("fail", now)
        self.state = RefundState.FAILED
        self.failure = failure

    def _finish(self, operation: str, now: datetime) -> None:
        if self.state is not RefundState.PENDING:
            raise errors.invalid_refund_state(self.state.value, operation)
        self.outcome_unknown = False
        self.update_time = now
