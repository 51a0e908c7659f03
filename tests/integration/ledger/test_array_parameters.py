"""Array parameters encoded from their declared type read back exactly as psycopg's own."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.storage import arrays
from services.ledger.storage.sql import query

pytestmark = pytest.mark.integration

AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - bounds; the zones are drawn
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))]),
)
VALUES = {
    "text": st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])),
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "smallint": st.integers(-(2**15), 2**15 - 1),
    "bytea": st.binary(max_size=40),
    "uuid": st.uuids().map(str),
    "timestamptz": AWARE,
}


@pytest.fixture(scope="module")
async def connection(ledger_database):
    async with ledger_database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_every_declared_type_reads_back_as_psycopg_sends_it(connection, data):
    kind = data.draw(st.sampled_from(sorted(VALUES)))
    values = data.draw(st.lists(st.none() | VALUES[kind], max_size=6))
    statement = query(f"SELECT CAST(:a AS {kind}[]) AS mine, CAST(:b AS {kind}[]) AS theirs")
    wire = arrays.encode(kind, values)
    assert wire is not None
    cursor = await connection.execute(statement, {"a": wire, "b": values})
    mine, theirs = await cursor.fetchone()
    assert mine == theirs
    await connection.rollback()


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("bigint", [2**63]),  # numeric in psycopg; PostgreSQL then refuses it as out of range
        ("bigint", [True]),
        ("text", [1]),
        ("uuid", ["not-a-uuid"]),
        ("timestamptz", [datetime(2026, 1, 1)]),  # noqa: DTZ001 - naive: psycopg's call
        ("interval", [timedelta(1)]),
        ("text", ["\ud800"]),
    ],
)
def test_values_it_does_not_take_are_left_to_psycopg(kind, values):
    assert arrays.encode(kind, values) is None


def test_the_statement_remembers_each_array_type():
    statement = query("SELECT CAST(:ids AS text[]), :n, CAST(:at AS timestamptz[])")
    assert statement.arrays == {"ids": "text", "at": "timestamptz"}
    assert "CAST(%(ids)b AS text[])" in statement
