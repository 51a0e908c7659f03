"""Random identifiers that can never look like a card number.

A hex id holds a run of 13+ decimal digits now and then (about 2 % of 24-hex-digit ids), and
one in ten of those passes Luhn: such an id would be refused by every card-data guard it
passes later (request validation, the sandbox, the webhook check). So ids are drawn again
until they do not look like one.
"""

from __future__ import annotations

import secrets

from services.chassis.card_data import looks_like_card_number


def random_id(prefix: str, hex_digits: int = 24) -> str:
    """`<prefix><hex>`, never containing anything the card-data guard would refuse."""
    while True:
        candidate = f"{prefix}{secrets.token_hex((hex_digits + 1) // 2)[:hex_digits]}"
        if not looks_like_card_number(candidate):
            return candidate
