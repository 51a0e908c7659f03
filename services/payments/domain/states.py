"""The payment lifecycle: its states and the only transitions between them."""

from __future__ import annotations

import enum

from services.payments.domain import errors


class PaymentState(enum.StrEnum):
    """Mirrors `commerce.payments.v1.PaymentState` without the prefix."""

    REQUIRES_AUTHORIZATION = "REQUIRES_AUTHORIZATION"
    AUTHORIZED = "AUTHORIZED"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    CAPTURED = "CAPTURED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


S = PaymentState

TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    S.REQUIRES_AUTHORIZATION: frozenset({S.AUTHORIZED, S.CAPTURED, S.FAILED}),
    S.AUTHORIZED: frozenset({S.PARTIALLY_CAPTURED, S.CAPTURED, S.VOIDED, S.EXPIRED}),
    # A final partial capture, a void of the remainder or the authorization lapsing all end
    # capturing with what was captured so far: CAPTURED.
    S.PARTIALLY_CAPTURED: frozenset({S.PARTIALLY_CAPTURED, S.CAPTURED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.VOIDED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""Every legal transition, exactly the contract's state machine (payments resources.proto)."""

FINAL: frozenset[PaymentState] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
CAPTURABLE: frozenset[PaymentState] = frozenset({S.AUTHORIZED, S.PARTIALLY_CAPTURED})
REFUNDABLE: frozenset[PaymentState] = frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED})


def can_transition(current: PaymentState, target: PaymentState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: PaymentState, target: PaymentState, operation: str) -> None:
    """Raise INVALID_PAYMENT_STATE unless `current -> target` is in the state machine."""
    if not can_transition(current, target):
        raise errors.invalid_payment_state(current.value, operation)
