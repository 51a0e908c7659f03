"""SQL client spans from SQLAlchemy's cursor events, against a real PostgreSQL.

Each statement is a CLIENT span, child of the span current when it ran (the RPC being served),
named and attributed by the OpenTelemetry database conventions, and carrying no value the
statement bound or the server quoted back.
"""

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from psycopg.errors import UniqueViolation
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.db.database import Database
from services.chassis.db.tracing import (
    MAX_QUERY_TEXT,
    collection_name,
    instrument_engine,
    operation_name,
    sanitize_sql,
    statement_span,
)

pytestmark = pytest.mark.integration

CARD = "4111111111111111"
HOLDER = "Jane Q. Customer"
EMAIL = "jane@example.com"
SECRETS = (CARD, HOLDER, EMAIL, "4111", "Jane")


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
async def owner_db(service_database, provider):
    """The owner's engine (it may create tables), instrumented with the test's provider."""
    database = Database.connect(service_database.owner_url, pool_size=2, max_overflow=0)
    tracing = instrument_engine(database.engine, tracer_provider=provider)
    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS payers"))
        await conn.execute(
            text("CREATE TABLE payers (id bigint PRIMARY KEY, holder text, email text UNIQUE)")
        )
    yield database
    tracing.uninstrument()
    await database.dispose()


def all_attribute_text(spans):
    return " ".join(
        f"{span.name} {span.status.description or ''} "
        + " ".join(f"{key}={value}" for key, value in (span.attributes or {}).items())
        + " ".join(str(event.attributes) for event in span.events)
        for span in spans
    )


def db_spans(exporter):
    return [s for s in exporter.get_finished_spans() if s.attributes.get("db.system.name")]


async def test_statements_are_client_spans_under_the_rpc_span(owner_db, provider, exporter):
    exporter.clear()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "commerce.payments.v1.PaymentService/Authorize", kind=SpanKind.SERVER
    ) as rpc:
        async with owner_db.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO payers (id, holder, email) VALUES (:id, :holder, :email)"),
                {"id": 1, "holder": f"{HOLDER} {CARD}", "email": EMAIL},
            )
            rows = await conn.execute(
                text("SELECT holder FROM payers WHERE email = :email"), {"email": EMAIL}
            )
            assert rows.scalar_one() == f"{HOLDER} {CARD}"

    spans = db_spans(exporter)
    by_name = {span.name: span for span in spans}
    assert set(by_name) >= {"INSERT payers", "SELECT payers"}
    insert = by_name["INSERT payers"]
    assert insert.kind is SpanKind.CLIENT
    assert insert.parent is not None
    assert insert.parent.span_id == rpc.get_span_context().span_id
    assert insert.context.trace_id == rpc.get_span_context().trace_id
    assert dict(insert.attributes) == {
        "db.system.name": "postgresql",
        "db.namespace": owner_db.engine.url.database,
        "db.operation.name": "INSERT",
        "db.collection.name": "payers",
        "db.query.text": (
            "INSERT INTO payers (id, holder, email) VALUES (%(id)s, %(holder)s, %(email)s)"
        ),
    }
    select = by_name["SELECT payers"]
    assert select.attributes["db.query.text"] == "SELECT holder FROM payers WHERE email = %(email)s"
    assert select.status.status_code is StatusCode.UNSET
    for secret in SECRETS:
        assert secret not in all_attribute_text(spans)


async def test_concurrent_requests_each_parent_their_own_statements(owner_db, provider, exporter):
    exporter.clear()
    tracer = provider.get_tracer("test")

    async def request(n):
        with tracer.start_as_current_span(f"rpc-{n}", kind=SpanKind.SERVER) as span:
            async with owner_db.engine.connect() as conn:
                for _ in range(3):
                    await conn.execute(text("SELECT pg_sleep(0.01), :n AS n"), {"n": n})
                    await asyncio.sleep(0)
            return span.get_span_context().span_id

    parents = await asyncio.gather(request(1), request(2))
    spans = [s for s in db_spans(exporter) if "pg_sleep" in s.attributes["db.query.text"]]
    assert len(spans) == 6
    assert sorted(s.parent.span_id for s in spans) == sorted(parents * 3)
    assert {s.name for s in spans} == {f"SELECT {owner_db.engine.url.database}"}


async def test_literals_inline_in_sql_are_sanitized(owner_db, exporter):
    exporter.clear()
    async with owner_db.engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO payers (id, holder, email) VALUES (2, '{HOLDER} {CARD}', "  # noqa: S608
                f"$tag${EMAIL}$tag$) -- card {CARD}"
            )
        )
    [insert] = [s for s in db_spans(exporter) if s.name == "INSERT payers"]
    assert insert.attributes["db.query.text"] == (
        "INSERT INTO payers (id, holder, email) VALUES (?, ?, ?)"
    )
    for secret in SECRETS:
        assert secret not in all_attribute_text([insert])


async def test_a_failed_statement_records_sqlstate_never_the_servers_message(
    owner_db, provider, exporter
):
    async with owner_db.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO payers (id, holder, email) VALUES (3, :h, :e)"),
            {"h": HOLDER, "e": "dup@example.com"},
        )
    exporter.clear()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("rpc", kind=SpanKind.SERVER) as rpc:
        with pytest.raises(IntegrityError) as raised:
            async with owner_db.engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO payers (id, holder, email) VALUES (4, :h, :e)"),
                    {"h": f"{HOLDER} {CARD}", "e": "dup@example.com"},
                )
        # The server's DETAIL quotes the duplicate value: it must not reach the span.
        assert "dup@example.com" in str(raised.value)

    [failed] = [s for s in db_spans(exporter) if s.name == "INSERT payers"]
    assert failed.parent.span_id == rpc.get_span_context().span_id
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None
    assert failed.attributes["db.response.status_code"] == "23505"
    assert failed.attributes["error.type"] == "23505"
    assert failed.events == ()
    for secret in (*SECRETS, "dup@example.com", "duplicate key"):
        assert secret not in all_attribute_text(db_spans(exporter))


async def test_instrumenting_twice_traces_once_and_uninstrument_stops(service_database):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    database = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    try:
        first = instrument_engine(database.engine, tracer_provider=provider)
        assert instrument_engine(database.engine.sync_engine) is first
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert [s.name for s in db_spans(exporter)] == [f"SELECT {service_database.name}"]

        first.uninstrument()
        exporter.clear()
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert db_spans(exporter) == []
    finally:
        await database.dispose()
        provider.shutdown()


async def test_tenant_transactions_are_traced_without_the_tenant_value(service_database):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    database = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    tracing = instrument_engine(database.engine, tracer_provider=provider)
    try:
        async with database.tenant_transaction("acme-tenant") as session:
            await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
        texts = [s.attributes["db.query.text"] for s in db_spans(exporter)]
        assert "SELECT set_config(%(setting)s::VARCHAR, %(tenant_id)s, true)" in texts
        assert "acme-tenant" not in all_attribute_text(db_spans(exporter))
    finally:
        tracing.uninstrument()
        await database.dispose()
        provider.shutdown()


async def test_statements_on_the_driver_connection_are_traced_by_statement_span(
    owner_db, provider, exporter
):
    """The ledger's hot path runs psycopg directly on the session's connection."""
    exporter.clear()
    insert = "INSERT INTO payers (id, holder, email) VALUES (%(id)s, %(holder)s, %(email)s)"
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("rpc", kind=SpanKind.SERVER) as rpc:
        async with AsyncSession(owner_db.engine) as session, session.begin():
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            row = {"id": 10, "holder": HOLDER, "email": "direct@example.com"}
            with statement_span(owner_db.engine, insert):
                await driver.execute(insert, row)
            # The session's bind (what the ledger's Sql holds) works as well as the engine.
            with pytest.raises(UniqueViolation), statement_span(session.bind, insert):
                await driver.execute(insert, row)

    ok, failed = [s for s in exporter.get_finished_spans() if s.name == "INSERT payers"]
    for span in (ok, failed):
        assert span.parent.span_id == rpc.get_span_context().span_id
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["db.query.text"] == insert
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["db.response.status_code"] == "23505"
    for secret in (*SECRETS, "direct@example.com"):
        assert secret not in all_attribute_text([ok, failed])


async def test_statement_span_finds_the_engine_from_any_bind(owner_db, exporter):
    exporter.clear()
    async with owner_db.engine.connect() as connection:
        for bind in (owner_db.engine, owner_db.engine.sync_engine, connection):
            with statement_span(bind, "SELECT 1") as span:
                assert span.is_recording()
        with statement_span(connection.sync_connection, "SELECT 1") as span:
            assert span.is_recording()
    assert len(exporter.get_finished_spans()) == 4


async def test_statement_span_is_a_no_op_on_an_engine_not_instrumented(service_database):
    database = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    try:
        with statement_span(database.engine, "SELECT 1") as span:
            assert not span.is_recording()
        with statement_span(None, "SELECT 1") as span:
            assert not span.is_recording()
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = 'it''s' AND b = 42", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT E'\\x41', x'1f', 1.5e3, .5", "SELECT ?, ?, ?, ?"),
        ('SELECT col2, "col 3" FROM "My T"', 'SELECT col2, "col 3" FROM "My T"'),
        ("/* 4111111111111111 */ SELECT 1 -- x\n", "SELECT ?"),
        ("SELECT $1, $$body 'q'$$, %s, %(a_1)s", "SELECT $1, ?, %s, %(a_1)s"),
        ("UPDATE   t\n\tSET v = -7", "UPDATE t SET v = -?"),
    ],
)
def test_sanitize_sql(sql, expected):
    assert sanitize_sql(sql) == expected


def test_sanitize_truncates():
    assert len(sanitize_sql("SELECT " + "a, " * 5000)) == MAX_QUERY_TEXT


@pytest.mark.parametrize(
    ("sql", "operation", "collection"),
    [
        ("insert into ledger.entries (a) values (%s)", "INSERT", "ledger.entries"),
        ("UPDATE ONLY accounts SET x = 1", "UPDATE", "accounts"),
        ("DELETE FROM outbox WHERE id = %s", "DELETE", "outbox"),
        ("SELECT a FROM accounts WHERE id = 1 FOR UPDATE", "SELECT", "accounts"),
        ("SELECT a FROM accounts a JOIN entries e ON a.id = e.account_id", "SELECT", None),
        ("SELECT a FROM x, y", "SELECT", None),
        ("SELECT (SELECT 1 FROM y) FROM x", "SELECT", None),
        ("WITH q AS (SELECT 1) SELECT * FROM q", "WITH", None),
        ("SELECT 1", "SELECT", None),
        ("", None, None),
    ],
)
def test_operation_and_collection(sql, operation, collection):
    sanitized = sanitize_sql(sql)
    assert operation_name(sanitized) == operation
    assert collection_name(operation_name(sanitized), sanitized) == collection
