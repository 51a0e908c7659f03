"""Card-number detection: any string that looks like a PAN (13-19 digits passing Luhn).

Card data never enters Commerce Mesh; payment methods are PSP tokens. The validation step runs
this over every string in every request and rejects a match without echoing or logging it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# A PAN as people write it: 13-19 digits in one run, or grouped with one kind of separator
# (space or dash) starting with a group of 4 (4-4-4-4, 4-6-5, 4-4-4-4-3, ...). Not inside a
# longer run of letters or digits, so UUIDs and other identifiers with digit groups are not PANs.
_EDGE_BEFORE = r"(?<![0-9A-Za-z])"
_EDGE_AFTER = r"(?![0-9A-Za-z])(?![ -][0-9])"
_CANDIDATE = re.compile(
    _EDGE_BEFORE + r"(?:\d{13,19}|\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{1,6}){1,3})" + _EDGE_AFTER
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2  # noqa: PLR2004 - Luhn's digit rule
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True if `text` contains a 13-19 digit run (spaces/dashes allowed) that passes Luhn."""
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):  # noqa: PLR2004 - PAN lengths
            return True
    return False


def card_number_fields(message: Message) -> list[str]:
    """Paths (e.g. `lines[2].note`, `metadata["memo"]`) of string fields holding a PAN."""
    return list(_scan(message, ""))


def _scan(message: Message, prefix: str) -> Iterator[str]:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                yield from _scan_value(value_field, item, f'{path}["{key}"]')
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _scan_value(field, item, f"{path}[{index}]")
        else:
            yield from _scan_value(field, value, path)


def _scan_value(field: FieldDescriptor, value: object, path: str) -> Iterator[str]:
    if field.type == FieldDescriptor.TYPE_STRING and isinstance(value, str):
        if looks_like_card_number(value):
            yield path
    elif isinstance(value, Message):
        yield from _scan(value, f"{path}.")
