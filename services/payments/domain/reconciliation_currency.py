"""ISO 4217 minor-unit exponents, and exact conversion of decimal amounts to minor units.

A settlement report may state amounts as decimals ("12.34"); the ledger counts integer minor
units. The exponent comes from ISO 4217 (JPY 0, USD 2, KWD 3); an amount finer than the
currency's minor unit is refused, never rounded: rounding would hide a PSP error.
"""

from __future__ import annotations

import re

# Active ISO 4217 codes with two decimals (the common case), listed so an unknown or
# mistyped code is refused instead of silently assumed to have cents.
_TWO_DECIMALS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)
_NO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_TWO = frozenset(_TWO_DECIMALS.split())
_OTHER = {
    **dict.fromkeys(_NO_DECIMALS.split(), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class CurrencyError(ValueError):
    """A currency code that is not an active ISO 4217 code."""


class AmountFormatError(ValueError):
    """A decimal amount that is malformed or finer than its currency's minor unit."""


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in `currency` (ISO 4217): JPY 0, USD 2, KWD 3."""
    if currency in _TWO:
        return 2
    exponent = _OTHER.get(currency)
    if exponent is None:
        msg = f"{currency!r} is not an active ISO 4217 currency code"
        raise CurrencyError(msg)
    return exponent


def to_minor_units(text: str, currency: str) -> int:
    """Exact decimal text ("-12.34") to integer minor units of `currency`; never rounds.

    Worked on the digits themselves, not on a float or a precision-bound Decimal context, so
    any length is exact. Trailing zeros beyond the minor unit ("12.340" USD) are the same
    value and accepted; a non-zero digit there ("12.345" USD) is refused.
    """
    exponent = minor_unit_exponent(currency)
    if not _DECIMAL.match(text):
        msg = f"{text!r} is not a decimal amount like 12.34 or -5"
        raise AmountFormatError(msg)
    negative = text.startswith("-")
    whole, _, fraction = text.removeprefix("-").partition(".")
    if fraction[exponent:].strip("0"):
        msg = (
            f"{text!r} has more than {exponent} decimal place(s), "
            f"finer than the minor unit of {currency}"
        )
        raise AmountFormatError(msg)
    digits = whole + fraction[:exponent].ljust(exponent, "0")
    minor = int(digits)
    return -minor if negative else minor


def format_minor_units(amount_minor: int, currency: str) -> str:
    """Integer minor units as exact decimal text in `currency`: 1234 USD -> "12.34"."""
    exponent = minor_unit_exponent(currency)
    if exponent == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}"
