"""Every way a checkout request can fail, each with its stable ErrorInfo reason."""

from __future__ import annotations

from services.chassis.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
)


def checkout_not_found(name: str) -> DomainError:
    return NotFound("CHECKOUT_NOT_FOUND", f"no checkout {name}", metadata={"resource": name})


def order_not_found(name: str) -> DomainError:
    return NotFound("ORDER_NOT_FOUND", f"no order {name}", metadata={"resource": name})


def checkout_not_open(state: str, order: str = "") -> DomainError:
    metadata = {"state": state}
    if order:
        metadata["order"] = order
    return FailedPrecondition(
        "CHECKOUT_NOT_OPEN", f"the checkout is {state}, not OPEN", metadata=metadata
    )


def customer_locked(order: str) -> DomainError:
    return FailedPrecondition(
        "CUSTOMER_LOCKED",
        "customer_id cannot change once an order was placed from the checkout",
        metadata={"order": order},
    )


def checkout_empty() -> DomainError:
    return FailedPrecondition("CHECKOUT_EMPTY", "the checkout has no lines to quote")


def address_required() -> DomainError:
    return FailedPrecondition(
        "ADDRESS_REQUIRED", "a shipping or billing address is needed to compute tax"
    )


def quote_stale(why: str) -> DomainError:
    return FailedPrecondition("QUOTE_STALE", f"the quote cannot be placed: {why}")


def payment_declined(order: str, decline_code: str) -> DomainError:
    return FailedPrecondition(
        "PAYMENT_DECLINED",
        "the payment method was declined",
        metadata={"order": order, "decline_code": decline_code},
    )


def etag_mismatch(current: str) -> DomainError:
    return Aborted(
        "ETAG_MISMATCH", "the checkout changed since it was read", metadata={"etag": current}
    )


def currency_mismatch(expected: str, given: str, field: str) -> DomainError:
    return InvalidArgument(
        "CURRENCY_MISMATCH",
        f"{field} is in {given}, the checkout is in {expected}",
        metadata={"currency_code": expected, "given": given, "field": field},
    )


def unsupported_currency(currency: str) -> DomainError:
    return InvalidArgument(
        "UNSUPPORTED_CURRENCY",
        f"{currency!r} is not an ISO 4217 currency the platform accepts",
        metadata={"currency_code": currency},
    )


def amount_out_of_range(what: str) -> DomainError:
    return OutOfRange("AMOUNT_OUT_OF_RANGE", f"{what} would exceed the int64 amount range")


def invalid_page_token() -> DomainError:
    return InvalidArgument(
        "INVALID_PAGE_TOKEN", "the page token is malformed or was issued for another listing"
    )


def invalid_filter(detail: str) -> DomainError:
    return InvalidArgument("INVALID_FILTER", f"the filter is not understood: {detail}")


def tax_unavailable(reason: str) -> DomainError:
    return Unavailable(
        "TAX_UNAVAILABLE",
        "the tax provider and its fallback both failed; retry",
        metadata={"cause": reason},
    )
