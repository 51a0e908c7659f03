"""Payment methods are PSP tokens, never card numbers; routing keys on their type."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from services.payments.domain import errors

_TOKEN = re.compile(r"^pm_[A-Za-z0-9_-]{4,200}$")
# The contract's own guard: 13+ digits in a row could be a card number posing as a token.
_DIGIT_RUN = re.compile(r"[0-9]{13,}")


class PaymentMethodType(enum.StrEnum):
    """Mirrors `PaymentMethodType`."""

    CARD = "CARD"
    WALLET = "WALLET"
    BANK_DEBIT = "BANK_DEBIT"
    BUY_NOW_PAY_LATER = "BUY_NOW_PAY_LATER"


class CaptureMethod(enum.StrEnum):
    """Mirrors `CaptureMethod`."""

    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


def is_valid_token(token: str) -> bool:
    return bool(_TOKEN.match(token)) and not _DIGIT_RUN.search(token)


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A PSP / vault token such as `pm_sandbox_ok` and the kind of method it stands for."""

    token: str
    type: PaymentMethodType

    def __post_init__(self) -> None:
        if not is_valid_token(self.token):
            # The token is not echoed: if it is card data, it must not reach a log.
            raise errors.invalid_field("payment_method.token", "must be a pm_ token")

    def __repr__(self) -> str:
        return f"PaymentMethod(type={self.type.value})"
