"""Every way a ledger request can fail, each with its stable ErrorInfo reason."""

from __future__ import annotations

from services.chassis.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
)


def account_not_found(name: str) -> DomainError:
    return NotFound("ACCOUNT_NOT_FOUND", f"no account {name}", metadata={"resource": name})


def entry_not_found(name: str) -> DomainError:
    return NotFound("ENTRY_NOT_FOUND", f"no journal entry {name}", metadata={"resource": name})


def hold_not_found(name: str) -> DomainError:
    return NotFound("HOLD_NOT_FOUND", f"no hold {name}", metadata={"resource": name})


def account_already_exists(name: str) -> DomainError:
    return AlreadyExists(
        "ACCOUNT_ALREADY_EXISTS", f"account {name} exists", metadata={"resource": name}
    )


def account_code_taken(code: str) -> DomainError:
    return AlreadyExists(
        "ACCOUNT_CODE_TAKEN", f"another account has code {code!r}", metadata={"code": code}
    )


def entry_already_exists(name: str) -> DomainError:
    return AlreadyExists(
        "ENTRY_ALREADY_EXISTS", f"journal entry {name} exists", metadata={"entry": name}
    )


def hold_already_exists(name: str) -> DomainError:
    return AlreadyExists("HOLD_ALREADY_EXISTS", f"hold {name} exists", metadata={"resource": name})


def entry_unbalanced(currency: str, imbalance: int) -> DomainError:
    return InvalidArgument(
        "ENTRY_UNBALANCED",
        f"postings do not sum to zero in {currency} (off by {imbalance})",
        metadata={"currency_code": currency, "imbalance_minor": str(imbalance)},
    )


def currency_mismatch(account: str, expected: str, given: str) -> DomainError:
    return InvalidArgument(
        "CURRENCY_MISMATCH",
        f"{account} holds {expected}, not {given}",
        metadata={"account": account, "currency_code": given},
    )


def account_closed(account: str) -> DomainError:
    return FailedPrecondition(
        "ACCOUNT_CLOSED", f"{account} is closed", metadata={"account": account}
    )


def insufficient_funds(account: str) -> DomainError:
    return FailedPrecondition(
        "INSUFFICIENT_FUNDS",
        f"{account} would break its debits/credits limit",
        metadata={"account": account},
    )


def account_balance_not_zero(account: str) -> DomainError:
    return FailedPrecondition(
        "ACCOUNT_BALANCE_NOT_ZERO",
        f"{account} still has a posted balance",
        metadata={"account": account},
    )


def account_has_pending_holds(account: str) -> DomainError:
    return FailedPrecondition(
        "ACCOUNT_HAS_PENDING_HOLDS",
        f"{account} still has pending holds",
        metadata={"account": account},
    )


def entry_already_reversed(entry: str, reversed_by: str) -> DomainError:
    return FailedPrecondition(
        "ENTRY_ALREADY_REVERSED",
        f"{entry} was reversed by {reversed_by}",
        metadata={"reversed_by": reversed_by},
    )


def entry_is_reversal(entry: str) -> DomainError:
    return FailedPrecondition(
        "ENTRY_IS_REVERSAL",
        f"{entry} is a reversing entry; post a new entry instead",
        metadata={"entry": entry},
    )


def hold_already_finalized(hold: str, state: str) -> DomainError:
    return FailedPrecondition(
        "HOLD_ALREADY_FINALIZED",
        f"{hold} is {state.upper()}",
        metadata={"hold": hold, "state": f"HOLD_STATE_{state.upper()}"},
    )


def hold_amount_exceeded(hold: str, held: int, asked: int) -> DomainError:
    return InvalidArgument(
        "HOLD_AMOUNT_EXCEEDED",
        f"{hold} holds {held}; cannot post {asked}",
        metadata={"hold": hold, "amount_minor": str(held)},
    )


def etag_mismatch(name: str) -> DomainError:
    return Aborted("ETAG_MISMATCH", f"{name} changed; re-read it", metadata={"resource": name})


def invalid_page_token() -> DomainError:
    return InvalidArgument(
        "INVALID_PAGE_TOKEN",
        "the page token is malformed or was issued for a different request",
    )


def amount_overflow(detail: str) -> DomainError:
    """The request itself holds amounts whose sums do not fit int64."""
    return InvalidArgument("AMOUNT_OVERFLOW", f"amounts overflow a signed 64-bit integer: {detail}")


def balance_overflow(account: str) -> DomainError:
    """The request is valid but would push an account's counters past int64."""
    return OutOfRange(
        "BALANCE_OVERFLOW",
        f"{account} would exceed the signed 64-bit balance range",
        metadata={"account": account},
    )


def zero_amount(account_id: str) -> DomainError:
    return InvalidArgument(
        "VALIDATION_FAILED",
        "posting amount must not be zero",
        metadata={"account_id": account_id, "rule": "posting.amount_non_zero"},
    )
