"""Card-number detection: any string that looks like a PAN (13-19 digits passing Luhn).

Card data never enters Commerce Mesh; payment methods are PSP tokens. The validation step runs
this over every string in every request — values and map keys — and rejects a match without
echoing or logging it. Fields marked `(commerce.auth.v1.credential)` (a webhook's signature:
opaque hex that holds a Luhn-valid digit run about once in a hundred) are only checked for NUL.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from commerce.auth.v1 import annotations_pb2

# A PAN as people write it: 13-19 digits in one run (not inside a longer run of digits), or
# grouped with one kind of separator (space or dash) starting with a group of 4 (4-4-4-4,
# 4-6-5, 4-4-4-4-3, ...) and not inside a longer run of letters or digits — so UUIDs, whose
# all-digit groups are at most 12 long and dash-separated, are never PANs.
_PLAIN = r"(?<!\d)\d{13,19}(?!\d)"
_GROUPED = (
    r"(?<![0-9A-Za-z])\d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{1,6}){1,3}(?![0-9A-Za-z])(?![ -][0-9])"
)
_CANDIDATE = re.compile(f"{_PLAIN}|{_GROUPED}")
# Exact fast exits, tried before _CANDIDATE: every match of it is at least 13 characters long
# and starts with 4 digits in a row; and no canonical UUID holds one (its all-digit groups are
# at most 12 digits long, and a grouped match would need a 4-digit group then 13 digits in
# groups bounded by dashes — see test_uuids_are_never_taken_for_card_numbers).
_MIN_CANDIDATE_LENGTH = 13
# A match of _PLAIN holds 13 digits in a row; one of _GROUPED starts with 4 digits, a separator
# and 3 digits: so a string without `\d{4}(?:\d{9}|[ -]\d{3})` holds neither (a plain search,
# no lookarounds: most text with digits exits here, before _CANDIDATE's costlier one).
_CANDIDATE_START = re.compile(r"\d{4}(?:\d{9}|[ -]\d{3})")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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
    if (
        len(text) < _MIN_CANDIDATE_LENGTH
        or _CANDIDATE_START.search(text) is None
        or _UUID.fullmatch(text) is not None
    ):
        return False
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):  # noqa: PLR2004 - PAN lengths
            return True
    return False


def is_credential(field: FieldDescriptor) -> bool:
    """Whether the contract marks the field `(commerce.auth.v1.credential)`."""
    return bool(field.GetOptions().Extensions[annotations_pb2.credential])


def string_fields(
    message: Message, prefix: str = "", *, credentials: bool = True
) -> Iterator[tuple[str, str]]:
    """Every string in `message`, nested, repeated and map keys included, with its path
    (`lines[2].note`, `metadata["memo"]`). A map key's own path is `metadata[<key>]`, and a key
    that looks like a card number never appears in any path. Without `credentials`, the
    fields marked as credentials are left out (what may hold card data)."""
    for field, value in message.ListFields():
        if not credentials and is_credential(field):
            continue
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str):
                    yield f"{path}[<key>]", key
                label = "<key>" if looks_like_card_number(str(key)) else key
                yield from _values(value_field, item, f'{path}["{label}"]', credentials=credentials)
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _values(field, item, f"{path}[{index}]", credentials=credentials)
        else:
            yield from _values(field, value, path, credentials=credentials)


def _values(
    field: FieldDescriptor, value: object, path: str, *, credentials: bool
) -> Iterator[tuple[str, str]]:
    if field.type == FieldDescriptor.TYPE_STRING and isinstance(value, str):
        yield path, value
    elif isinstance(value, Message):
        yield from string_fields(value, f"{path}.", credentials=credentials)


def suspect_string(text: str) -> bool:
    """True if `text` holds a NUL or looks like a card number: what the validator refuses."""
    return "\x00" in text or looks_like_card_number(text)


def has_refused_strings(message: Message) -> bool:
    """The exact (slow) walk of what the validator refuses: a NUL in any string, a card
    number in any string that is not a credential."""
    return any("\x00" in text for _, text in string_fields(message)) or any(
        looks_like_card_number(text) for _, text in string_fields(message, credentials=False)
    )


def has_suspect_strings(message: Message) -> bool:
    """True if any string in `message` (nested, repeated, map keys and values) is a
    `suspect_string`. Compiled once per message type and path-free: the cheap test every
    request passes through; `string_fields` names the fields only when it is True."""
    desc = cast("Descriptor", message.DESCRIPTOR)  # the upb and pure descriptors agree
    scan = _SCANNERS.get(desc.full_name)
    if scan is None:
        _scanner_name(desc)
        scan = _SCANNERS[desc.full_name]
    return scan(message)


_SCANNERS: dict[str, Callable[[Message], bool]] = {}
# The generated scanners share one namespace (their globals): a scanner calls the scanner of a
# nested message type by name — also a recursive one, defined after it.
# What code from `suspect_source` needs in its namespace.
SUSPECT_NAMESPACE: dict[str, Any] = {
    "_card": looks_like_card_number,
    "_card_start": _CANDIDATE_START.search,
}
_NAMESPACE: dict[str, Any] = dict(SUSPECT_NAMESPACE)
_NAMES: dict[str, str] = {}  # message type → its scanner's name in _NAMESPACE


def holds_strings(desc: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold a string anywhere (a Timestamp cannot)."""
    if desc.full_name in seen or desc.extension_ranges:
        return True  # recursive or extensible: assume it can
    for fd in desc.fields:
        target = fd.message_type
        if fd.type == FieldDescriptor.TYPE_STRING:
            return True
        if target is not None and holds_strings(target, seen | {desc.full_name}):
            return True
    return False


def suspect_source(variable: str, field: FieldDescriptor | None = None) -> str:
    """`suspect_string(<variable>)` as a Python expression for generated code (with
    SUSPECT_NAMESPACE): NUL, or a card number — looks_like_card_number's first two exits
    (length, how a candidate starts) inlined, so most strings cost no call. For a string
    `field` marked as a credential: NUL only."""
    v = variable
    if field is not None and is_credential(field):
        return f'("\\x00" in {v})'
    return (
        f'("\\x00" in {v} or (len({v}) >= {_MIN_CANDIDATE_LENGTH}'
        f" and _card_start({v}) is not None and _card({v})))"
    )


def _scanner_name(desc: Descriptor) -> str:
    """The name of the scanner of `desc` in _NAMESPACE, generated on first use.

    Straight-line Python for one message type: each string field tested in place (NUL, then
    a card number only from 13 characters with a candidate's start on), each set message field
    that can hold strings scanned by a direct call of its own type's scanner; no paths, no
    generators, no descriptor lookups per call."""
    name = _NAMES.get(desc.full_name)
    if name is not None:
        return name
    name = _NAMES[desc.full_name] = f"scan_{len(_NAMES)}_{desc.name}"  # before nested types
    lines = [f"def {name}(m):  # {desc.full_name}"]
    for fd in desc.fields:
        lines += [f"    {line}" for line in _field_lines(fd)]
    if desc.extension_ranges:  # extensions are not fields of the type: let the walk see them
        lines.append("    return any(f.is_extension for f, _ in m.ListFields())")
    else:
        lines.append("    return False")
    exec("\n".join(lines), _NAMESPACE)  # noqa: S102 - code generated from descriptors only
    _SCANNERS[desc.full_name] = _NAMESPACE[name]
    return name


def _field_lines(fd: FieldDescriptor) -> list[str]:  # noqa: PLR0911 - one return per shape
    """The statements that return True if this field of `m` holds a suspect string."""
    plain = fd.name.isidentifier() and not keyword.iskeyword(fd.name)
    attr = f"m.{fd.name}" if plain else f"getattr(m, {fd.name!r})"
    entry = fd.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key_is_string = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
        value = entry.fields_by_name["value"]
        tests = [suspect_source("k")] if key_is_string else []
        if value.type == FieldDescriptor.TYPE_STRING:
            tests.append(suspect_source("v"))
        elif value.message_type is not None and holds_strings(value.message_type):
            tests.append(f"{_scanner_name(value.message_type)}(v)")
        if not tests:
            return []
        return [
            f"for k, v in {attr}.items():",
            f"    if {' or '.join(tests)}:",
            "        return True",
        ]
    if fd.type == FieldDescriptor.TYPE_STRING:
        if fd.is_repeated:
            test = suspect_source("v", fd)
            return [f"for v in {attr}:", f"    if {test}:", "        return True"]
        present = f"m.HasField({fd.name!r})" if fd.has_presence else "v"
        return [f"v = {attr}", f"if {present} and {suspect_source('v', fd)}:", "    return True"]
    if fd.message_type is None or not holds_strings(fd.message_type):
        return []
    scan = _scanner_name(fd.message_type)
    if fd.is_repeated:
        return [f"for v in {attr}:", f"    if {scan}(v):", "        return True"]
    return [f"if m.HasField({fd.name!r}) and {scan}({attr}):", "    return True"]


def card_number_fields(message: Message) -> list[str]:
    """Paths of the strings in `message` that hold a PAN."""
    return [
        path
        for path, text in string_fields(message, credentials=False)
        if looks_like_card_number(text)
    ]
