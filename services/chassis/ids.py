"""Server-assigned resource ids: 26 base32 characters (a-z, 2-7) of a UUID.

Not hex: ids travel in resource names through every service, and a hex id holds a 13+ digit
run that passes Luhn about once in 250 ids, which the chassis refuses as a possible card
number (services/chassis/card_data.py) — a resource named so could never be read again.
Base32 makes such a run vanishingly rare, and it is excluded outright. Pure Python, so any
service's domain may use it.
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid

_DIGIT_RUN = re.compile(r"\d{13}")


def _base32(value: uuid.UUID) -> str:
    return base64.b32encode(value.bytes).decode().rstrip("=").lower()


def random_id() -> str:
    """A fresh id."""
    while True:
        candidate = _base32(uuid.uuid4())
        if not _DIGIT_RUN.search(candidate):
            return candidate


def stable_id(namespace: uuid.UUID, source: str) -> str:
    """The same id for the same source, every time (a UUIDv5, re-derived in the rare case it
    would hold a long digit run)."""
    for attempt in itertools.count():
        name = source if attempt == 0 else f"{source}#{attempt}"
        candidate = _base32(uuid.uuid5(namespace, name))
        if not _DIGIT_RUN.search(candidate):
            return candidate
    raise AssertionError("unreachable")
