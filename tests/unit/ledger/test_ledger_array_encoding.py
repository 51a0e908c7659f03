"""The whole-list array encoders write exactly the bytes of the element-by-element one."""

import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.ledger.storage import arrays

VALUES = {
    "text": st.text(),  # lone surrogates included: refused by both
    "bigint": st.integers(-(2**63) - 2, 2**63 + 1) | st.booleans(),
    "smallint": st.integers(-(2**15) - 2, 2**15 + 1) | st.booleans(),
    "bytea": st.binary(max_size=40) | st.binary(max_size=5).map(bytearray),
    "uuid": st.uuids().map(str),
    "timestamptz": st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45))])
    ),
}
LISTS = st.sampled_from(sorted(VALUES)).flatmap(
    lambda kind: st.tuples(
        st.just(kind),
        st.lists(VALUES[kind], max_size=8)  # no NULLs: the whole-list encoders
        | st.lists(st.none() | VALUES[kind], max_size=8)
        | st.lists(st.none(), max_size=3)
        | st.lists(st.text(max_size=2) | st.integers(), max_size=3),  # wrong types
    )
)


def reference(kind, values):
    """The element-by-element encoding of ADR 0019 (before the whole-list encoders)."""
    _wrapper, element_oid, encoder = arrays._TYPES[kind]
    if not values:
        return struct.pack(">iii", 0, 0, element_oid)
    parts, has_null = [], 0
    try:
        for value in values:
            if value is None:
                parts.append(struct.pack(">i", -1))
                has_null = 1
            else:
                item = encoder(value)
                parts.append(struct.pack(">i", len(item)) + item)
    except (TypeError, ValueError, struct.error):
        return None
    return struct.pack(">iiiii", 1, has_null, element_oid, len(values), 1) + b"".join(parts)


@given(LISTS)
def test_every_list_encodes_to_the_reference_bytes_or_is_left_to_psycopg_alike(case):
    kind, values = case
    assert arrays.encode(kind, values) == reference(kind, values)


def test_long_texts_and_the_range_edges():
    cases: list[tuple[str, list[Any]]] = [
        ("text", ["x" * 255, "é" * 200, "y" * 70_000]),
        ("bytea", [b"x" * 255, b"y" * 256, b"z" * 70_000, b""]),
        ("bytea", [b"x", memoryview(b"y"), bytearray(b"z")]),
        ("bigint", [-(2**63), 2**63 - 1]),
        ("smallint", [-(2**15), 2**15 - 1]),
        ("bigint", [2**63]),
        ("smallint", [2**15]),
    ]
    for kind, values in cases:
        assert arrays.encode(kind, values) == reference(kind, values)
    assert arrays.encode("bigint", [2**63]) is None
    assert arrays.encode("timestamptz", [datetime(2026, 1, 1)]) is None  # noqa: DTZ001
