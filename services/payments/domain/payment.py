"""The Payment aggregate: authorization, captures, void, expiry and refunds, by the rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from services.payments.domain import errors
from services.payments.domain.attempts import (
    AmbiguousOutcome,
    Attempt,
    AttemptOutcome,
    Operation,
    PaymentFailure,
)
from services.payments.domain.methods import CaptureMethod, PaymentMethod
from services.payments.domain.money import Money
from services.payments.domain.refunds import Refund, RefundReason, RefundState
from services.payments.domain.states import (
    CAPTURABLE,
    REFUNDABLE,
    PaymentState,
    check_transition,
)

S = PaymentState


@dataclass(slots=True, kw_only=True)
class Payment:
    """One payment of one order; every change goes through a method that checks the rules.

    The PSP is called between a `check_*` (may this happen, for how much?) and the matching
    past-tense method (it happened), so nothing is sent to a PSP that the rules would refuse.
    """

    payment_id: str
    amount: Money
    payment_method: PaymentMethod
    capture_method: CaptureMethod
    create_time: datetime
    update_time: datetime
    state: PaymentState = S.REQUIRES_AUTHORIZATION
    amount_authorized: Money = field(init=False)
    amount_captured: Money = field(init=False)
    amount_refunded: Money = field(init=False)
    psp: str = ""
    psp_reference: str = ""
    failure: PaymentFailure | None = None
    attempts: list[Attempt] = field(default_factory=list)
    ambiguous_outcome: AmbiguousOutcome | None = None
    refunds: dict[str, Refund] = field(default_factory=dict)
    expire_time: datetime | None = None

    def __post_init__(self) -> None:
        if self.amount.amount_minor <= 0:
            raise errors.invalid_field("amount.amount_minor", "must be positive")
        zero = Money.zero(self.amount.currency)
        self.amount_authorized = self.amount_captured = self.amount_refunded = zero

    # -- views --------------------------------------------------------------------------

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def outcome_unknown(self) -> bool:
        return self.ambiguous_outcome is not None

    @property
    def capturable(self) -> Money:
        """Authorized and not yet captured, while capturing is still possible."""
        if self.state not in CAPTURABLE:
            return Money.zero(self.currency)
        return self.amount_authorized - self.amount_captured

    @property
    def refundable(self) -> Money:
        """Captured, minus refunds that succeeded or are still pending."""
        if self.state not in REFUNDABLE:
            return Money.zero(self.currency)
        pending = sum(
            r.amount.amount_minor for r in self.refunds.values() if r.state is RefundState.PENDING
        )
        return self.amount_captured - self.amount_refunded - Money(pending, self.currency)

    # -- attempts and unknown outcomes ---------------------------------------------------

    def record_attempt(self, attempt: Attempt) -> None:
        """Append a PSP call; numbers run 1, 2, 3... in the order calls were made."""
        if attempt.attempt_number != len(self.attempts) + 1:
            raise errors.invalid_field("attempt_number", "must follow the last attempt")
        if attempt.refund and attempt.refund not in self.refunds:
            raise errors.refund_not_found(attempt.refund)
        self.attempts.append(attempt)
        self.update_time = attempt.end_time
        if attempt.outcome is AttemptOutcome.UNKNOWN:
            self._outcome_became_unknown(attempt)

    def next_attempt_number(self) -> int:
        return len(self.attempts) + 1

    def _outcome_became_unknown(self, attempt: Attempt) -> None:
        self.ambiguous_outcome = AmbiguousOutcome(
            operation=attempt.operation,
            psp=attempt.psp,
            amount=attempt.amount,
            attempt_number=attempt.attempt_number,
            start_time=attempt.start_time,
            psp_reference=attempt.psp_reference,
            refund=attempt.refund,
        )
        if attempt.refund:
            self.refunds[attempt.refund].outcome_unknown = True

    def inquiry_made(self) -> None:
        """Count one more status inquiry that did not settle the unknown outcome."""
        if self.ambiguous_outcome is None:
            raise errors.invalid_payment_state(self.state.value, "inquire about")
        outcome = self.ambiguous_outcome
        self.ambiguous_outcome = replace(
            outcome, resolution_attempts=outcome.resolution_attempts + 1
        )

    def outcome_resolved(self) -> AmbiguousOutcome:
        """Clear the unknown outcome; the caller then applies the real one (authorized()...)."""
        if self.ambiguous_outcome is None:
            raise errors.invalid_payment_state(self.state.value, "resolve the outcome of")
        outcome, self.ambiguous_outcome = self.ambiguous_outcome, None
        if outcome.refund:
            self.refunds[outcome.refund].outcome_unknown = False
        return outcome

    def _check_known(self) -> None:
        """Refuse to start anything while an earlier PSP call's outcome is unknown."""
        if self.ambiguous_outcome is not None:
            raise errors.outcome_unknown(self.ambiguous_outcome.operation.value)

    # -- authorization -------------------------------------------------------------------

    def check_authorize(self) -> None:
        self._check_known()
        if self.state is not S.REQUIRES_AUTHORIZATION:
            raise errors.invalid_payment_state(self.state.value, "authorize")

    def authorized(
        self,
        *,
        psp: str,
        psp_reference: str,
        amount: Money,
        now: datetime,
        expire_time: datetime | None = None,
    ) -> None:
        """The PSP reserved `amount` (at most the requested amount, in its currency)."""
        self.check_authorize()
        self.amount.same_currency(amount)
        if not 0 < amount.amount_minor <= self.amount.amount_minor:
            raise errors.invalid_field("amount_authorized", "must be within the requested amount")
        check_transition(self.state, S.AUTHORIZED, "authorize")
        self.state = S.AUTHORIZED
        self.psp, self.psp_reference = psp, psp_reference
        self.amount_authorized = amount
        self.expire_time = expire_time
        self.update_time = now

    def authorization_failed(self, failure: PaymentFailure, now: datetime) -> None:
        self.check_authorize()
        check_transition(self.state, S.FAILED, "fail")
        self.state, self.failure, self.update_time = S.FAILED, failure, now

    # -- capture, void, expiry -----------------------------------------------------------

    def check_capture(self, amount: Money | None, now: datetime) -> Money:
        """The amount a capture may take (the whole remainder when None), or a domain error."""
        self._check_known()
        if self.state not in CAPTURABLE:
            raise errors.invalid_payment_state(self.state.value, "capture")
        if self.expire_time is not None and now >= self.expire_time:
            raise errors.authorization_expired()
        remaining = self.capturable
        if amount is None:
            return remaining
        self.amount.same_currency(amount)
        if amount.amount_minor <= 0:
            raise errors.invalid_field("amount.amount_minor", "must be positive")
        if amount.amount_minor > remaining.amount_minor:
            raise errors.capture_amount_exceeded(amount.amount_minor, remaining.amount_minor)
        return amount

    def captured(self, amount: Money, *, final: bool, now: datetime) -> None:
        """The PSP captured `amount`; a final capture or one of the remainder ends capturing."""
        amount = self.check_capture(amount, now)
        self.amount_captured = self.amount_captured + amount
        done = final or self.amount_captured == self.amount_authorized
        target = S.CAPTURED if done else S.PARTIALLY_CAPTURED
        check_transition(self.state, target, "capture")
        self.state, self.update_time = target, now
        if done:
            self.expire_time = None

    def authorized_and_captured(
        self, *, psp: str, psp_reference: str, amount: Money, now: datetime
    ) -> None:
        """Automatic capture: the PSP authorized and captured in one call."""
        self.check_authorize()
        self.amount.same_currency(amount)
        check_transition(self.state, S.CAPTURED, "authorize and capture")
        if not 0 < amount.amount_minor <= self.amount.amount_minor:
            raise errors.invalid_field("amount_authorized", "must be within the requested amount")
        self.psp, self.psp_reference = psp, psp_reference
        self.amount_authorized = self.amount_captured = amount
        self.state, self.update_time = S.CAPTURED, now

    def check_void(self) -> None:
        self._check_known()
        if self.state not in CAPTURABLE:
            raise errors.invalid_payment_state(self.state.value, "void")

    def voided(self, now: datetime) -> None:
        """The uncaptured rest was released: VOIDED if nothing was captured, else CAPTURED."""
        self.check_void()
        target = S.VOIDED if self.state is S.AUTHORIZED else S.CAPTURED
        check_transition(self.state, target, "void")
        self.state, self.expire_time, self.update_time = target, None, now

    def expired(self, now: datetime) -> None:
        """The authorization lapsed: EXPIRED if nothing was captured, else CAPTURED."""
        self._check_known()
        if self.state not in CAPTURABLE:
            raise errors.invalid_payment_state(self.state.value, "expire")
        target = S.EXPIRED if self.state is S.AUTHORIZED else S.CAPTURED
        check_transition(self.state, target, "expire")
        self.state, self.expire_time, self.update_time = target, None, now

    # -- refunds -------------------------------------------------------------------------

    def request_refund(
        self,
        refund_id: str,
        amount: Money | None,
        reason: RefundReason,
        now: datetime,
        description: str = "",
    ) -> Refund:
        """Open a PENDING refund (all still refundable when None); it counts at once."""
        self._check_known()
        if self.state not in REFUNDABLE:
            raise errors.invalid_payment_state(self.state.value, "refund")
        if refund_id in self.refunds:
            raise errors.refund_already_exists(refund_id)
        refundable = self.refundable
        amount = refundable if amount is None else amount
        self.amount.same_currency(amount)
        if amount.amount_minor <= 0:
            raise errors.invalid_field("amount.amount_minor", "must be positive")
        if amount.amount_minor > refundable.amount_minor:
            raise errors.refund_amount_exceeded(amount.amount_minor, refundable.amount_minor)
        refund = Refund(
            refund_id=refund_id,
            amount=amount,
            reason=reason,
            description=description,
            psp=self.psp,
            create_time=now,
            update_time=now,
        )
        self.refunds[refund_id] = refund
        self.update_time = now
        return refund

    def refund_succeeded(self, refund_id: str, psp_reference: str, now: datetime) -> None:
        refund = self._refund(refund_id)
        total = self.amount_refunded + refund.amount
        target = S.REFUNDED if total == self.amount_captured else S.PARTIALLY_REFUNDED
        check_transition(self.state, target, "refund")
        refund.succeed(psp_reference, now)
        self.amount_refunded, self.state, self.update_time = total, target, now

    def refund_failed(self, refund_id: str, failure: PaymentFailure, now: datetime) -> None:
        self._refund(refund_id).fail(failure, now)
        self.update_time = now

    def _refund(self, refund_id: str) -> Refund:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise errors.refund_not_found(refund_id)
        if refund.outcome_unknown:
            raise errors.outcome_unknown(Operation.REFUND.value)
        return refund
