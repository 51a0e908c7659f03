"""Card-number detection: any string that looks like a PAN (13-19 digits passing Luhn).

Card data never enters Commerce Mesh; payment methods are PSP tokens. The validation step runs
this over every string in every request — values and map keys — and rejects a match without
echoing or logging it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# A PAN as people write it: 13-19 digits in one run (not inside a longer run of digits), or
# grouped with one kind of separator (space or dash) starting with a group of 4 (4-4-4-4,
# 4-6-5, 4-4-4-4-3, ...) and not inside a longer run of letters or digits — so UUIDs, whose
# all-digit groups are at most 12 long and dash-separated, are never PANs.
_PLAIN = r"(?<!\d)\d{13,19}(?!\d)"
_GROUPED = (
    r"(?<![0-9A-Za-z])\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{1,6}){1,3}(?![0-9A-Za-z])(?![ -][0-9])"
)
_CANDIDATE = re.compile(f"{_PLAIN}|{_GROUPED}")


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


def string_fields(message: Message, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string in `message`, nested, repeated and map keys included, with its path
    (`lines[2].note`, `metadata["memo"]`). A map key's own path is `metadata[<key>]`, and a key
    that looks like a card number never appears in any path."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str):
                    yield f"{path}[<key>]", key
                label = "<key>" if looks_like_card_number(str(key)) else key
                yield from _values(value_field, item, f'{path}["{label}"]')
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _values(field, item, f"{path}[{index}]")
        else:
            yield from _values(field, value, path)


def _values(field: FieldDescriptor, value: object, path: str) -> Iterator[tuple[str, str]]:
    if field.type == FieldDescriptor.TYPE_STRING and isinstance(value, str):
        yield path, value
    elif isinstance(value, Message):
        yield from string_fields(value, f"{path}.")


def card_number_fields(message: Message) -> list[str]:
    """Paths of the strings in `message` that hold a PAN."""
    return [path for path, text in string_fields(message) if looks_like_card_number(text)]
