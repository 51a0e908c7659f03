"""The cart's values: who buys, where it goes, and the priced lines (minor units)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Customer:
    customer_id: str
    email: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class Address:
    region_code: str
    administrative_area: str = ""
    locality: str = ""
    postal_code: str = ""
    address_lines: tuple[str, ...] = ()
    recipient: str = ""


@dataclass(frozen=True)
class Discount:
    """A line discount: a fixed `amount_off` (whole line) or `percent_off_bps`; one is set."""

    code: str = ""
    amount_off: int | None = None
    percent_off_bps: int | None = None


@dataclass(frozen=True)
class Line:
    line_id: str
    sku: str
    quantity: int
    unit_price: int  # minor units of the checkout's currency
    description: str = ""
    product_tax_code: str = ""
    discount: Discount | None = None

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity
