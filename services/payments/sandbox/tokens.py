"""The sandbox's documented test tokens and what each one makes an authorization do."""

from __future__ import annotations

import enum


class TokenBehaviour(enum.Enum):
    APPROVE = "approve"
    DECLINE = "decline"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNAVAILABLE_ONCE = "unavailable_once"
    """The first request under an idempotency key gets 503 (nothing done); retries succeed."""
    SLOW = "slow"
    """Approved at once, but answered only after `timeout_seconds`: past any sane deadline."""
    UNAVAILABLE = "unavailable"
    """Always 503, nothing done."""


TEST_TOKENS: dict[str, TokenBehaviour] = {
    "pm_sandbox_ok": TokenBehaviour.APPROVE,
    "pm_sandbox_decline": TokenBehaviour.DECLINE,
    "pm_sandbox_insufficient_funds": TokenBehaviour.INSUFFICIENT_FUNDS,
    "pm_sandbox_retry_once": TokenBehaviour.UNAVAILABLE_ONCE,
    "pm_sandbox_timeout": TokenBehaviour.SLOW,
    "pm_sandbox_5xx": TokenBehaviour.UNAVAILABLE,
}


def behaviour_of(token: str) -> TokenBehaviour:
    """Unknown tokens behave like `pm_sandbox_ok`."""
    return TEST_TOKENS.get(token, TokenBehaviour.APPROVE)
