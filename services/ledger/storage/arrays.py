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
    if not values:
        return wrapper(_EMPTY.pack(0, 0, element_oid))
    parts = []
    has_null = 0
    try:
        for value in values:
            if value is None:
                parts.append(_NULL)
                has_null = 1
            else:
                item = encoder(value)
                parts.append(_INT4.pack(len(item)) + item)
    except (TypeError, ValueError, struct.error):
        return None
    header = _HEADER.pack(1, has_null, element_oid, len(values), 1)
    return wrapper(header + b"".join(parts))
