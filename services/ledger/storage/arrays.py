"""Array parameters in PostgreSQL's binary array format, encoded for their declared type.

Every array parameter of the ledger's statements is cast to its type in the SQL
(`CAST(:ids AS text[])`), so its element type is known before any value is seen. psycopg,
given a plain list, finds out per list and per call: it scans the list for an element to
pick a dumper, upgrades it, computes the dimensions, then dumps element by element — about
half of the Python time of a single-entry transaction's ~35 arrays (ADR 0019). Here the
encoder is chosen from the cast, and the list becomes the wire bytes in one pass.

Only the exact element types listed are encoded, and only values of the expected Python
type (`str` for text, `int` for bigint, aware `datetime` for timestamptz, ...). Anything
else — an int beyond int64, a naive datetime, a string that is not a UUID, an unknown
type — makes `encode` return None, and the list goes to psycopg exactly as before, so
psycopg and PostgreSQL report the same errors they always did.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format

_INT2 = struct.Struct(">h")
_INT4 = struct.Struct(">i")
_INT8 = struct.Struct(">q")
_HEADER = struct.Struct(">iiiii")  # dimensions, has nulls, element oid, length, lower bound
_EMPTY = struct.Struct(">iii")  # zero dimensions, no nulls, element oid
_NULL = _INT4.pack(-1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _text(value: Any) -> bytes:
    if type(value) is not str:
        raise TypeError(value)
    return value.encode()


def _int8(value: Any) -> bytes:
    if type(value) is not int:
        raise TypeError(value)
    return _INT8.pack(value)  # struct.error beyond int64


def _int2(value: Any) -> bytes:
    if type(value) is not int:
        raise TypeError(value)
    return _INT2.pack(value)


def _bytea(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(value)
    return bytes(value)


def _uuid(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if type(value) is not str:
        raise TypeError(value)
    return uuid.UUID(value).bytes  # ValueError if not a UUID


def _timestamptz(value: Any) -> bytes:
    if type(value) is not datetime or value.tzinfo is None:
        raise TypeError(value)
    delta = value - _PG_EPOCH
    return _INT8.pack((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


class _EncodedArray(bytes):
    """Wire bytes of one array; each subclass carries its array type's oid."""


def _array_type(
    name: str, element_oid: int, array_oid: int, encoder: Callable[[Any], bytes]
) -> tuple[type[_EncodedArray], int, Callable[[Any], bytes]]:
    encoded = type(f"_{name.title()}Array", (_EncodedArray,), {})
    dumper = type(
        f"_{name.title()}ArrayDumper",
        (Dumper,),
        {"format": Format.BINARY, "oid": array_oid, "dump": _dump_as_is},
    )
    psycopg.adapters.register_dumper(encoded, dumper)
    return encoded, element_oid, encoder


def _dump_as_is(_self: Dumper, obj: Any) -> Buffer:
    return bytes(obj)


# Element type as written in the casts -> (wrapper class, element oid, element encoder).
_TYPES = {
    "text": _array_type("text", 25, 1009, _text),
    "bigint": _array_type("bigint", 20, 1016, _int8),
    "smallint": _array_type("smallint", 21, 1005, _int2),
    "bytea": _array_type("bytea", 17, 1001, _bytea),
    "uuid": _array_type("uuid", 2950, 2951, _uuid),
    "timestamptz": _array_type("timestamptz", 1184, 1185, _timestamptz),
}


def encode(element_type: str, values: Sequence[Any]) -> bytes | None:
    """`values` as a one-dimensional `element_type[]` in binary, or None to leave it to
    psycopg (an element type or a value this encoder does not take)."""
    known = _TYPES.get(element_type)
    if known is None:
        return None
    wrapper, element_oid, encoder = known
    count = len(values)
    if not count:
        return wrapper(_EMPTY.pack(0, 0, element_oid))
    nulls = values.count(None)
    if nulls == count:  # e.g. no entry of a batch reverses one: no element to encode
        return wrapper(_HEADER.pack(1, 1, element_oid, count, 1) + _NULL * count)
    whole = _WHOLE.get(element_type) if not nulls else None
    body = whole(values) if whole is not None else None
    if body is None:  # NULLs, another type, a value out of range: one by one (or refused)
        body = _each(encoder, values)
    if body is None:
        return None
    return wrapper(_HEADER.pack(1, 1 if nulls else 0, element_oid, count, 1) + body)


def _each(encoder: Callable[[Any], bytes], values: Sequence[Any]) -> bytes | None:
    """The elements one by one (NULL or length + bytes); None if one is not taken."""
    parts = []
    try:
        for value in values:
            if value is None:
                parts.append(_NULL)
            else:
                item = encoder(value)
                parts.append(_INT4.pack(len(item)) + item)
    except (TypeError, ValueError, struct.error):
        return None
    return b"".join(parts)


# Whole-list encoders for lists without NULLs of the most frequent types: the same bytes as
# `_each` (a unit test compares them), in fewer Python operations per element.
_LENGTHS = [_INT4.pack(n) for n in range(256)]


def _texts(values: Sequence[Any]) -> bytes | None:
    parts: list[bytes] = []
    append = parts.append
    try:
        for value in values:
            if type(value) is not str:
                return None
            item = value.encode()
            size = len(item)
            append(_LENGTHS[size] if size < 256 else _INT4.pack(size))  # noqa: PLR2004
            append(item)
    except ValueError:  # a lone surrogate
        return None
    return b"".join(parts)


def _byteas(values: Sequence[Any]) -> bytes | None:
    parts: list[bytes] = []
    append = parts.append
    for value in values:
        if type(value) is not bytes:  # bytearray, memoryview: element by element
            return None
        size = len(value)
        append(_LENGTHS[size] if size < 256 else _INT4.pack(size))  # noqa: PLR2004
        append(value)
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def _fixed(code: str, count: int) -> struct.Struct:
    """`count` times (int4 length, value of format `code`)."""
    return struct.Struct(">" + ("i" + code) * count)


def _fixed_width(code: str, size: int) -> Callable[[Sequence[Any]], bytes | None]:
    def whole(values: Sequence[Any]) -> bytes | None:
        for value in values:
            if type(value) is not int:
                return None
        flat: list[int] = [size] * (2 * len(values))
        flat[1::2] = values
        try:
            return _fixed(code, len(values)).pack(*flat)
        except struct.error:  # beyond the type's range
            return None

    return whole


_WHOLE: dict[str, Callable[[Sequence[Any]], bytes | None]] = {
    "text": _texts,
    "bytea": _byteas,
    "bigint": _fixed_width("q", 8),
    "smallint": _fixed_width("h", 2),
}
