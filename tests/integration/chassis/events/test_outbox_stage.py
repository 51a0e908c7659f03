"""`stage()`: one outbox row in the caller's transaction, refused for another tenant's subject."""

import pytest
import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import Int64Value
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.exc import ProgrammingError

from services.chassis.events.outbox import outbox_table, stage
from services.chassis.events.subject import InvalidSubjectError

pytestmark = pytest.mark.integration

TENANT = "acme"
SOURCE = "//commerce-mesh/tests"
SUBJECT = f"tenants/{TENANT}/orders/o1"


async def test_stage_writes_the_event_with_its_cloudevents_fields(events_db, kit):
    async with events_db.database.tenant_transaction(TENANT) as session:
        event_id = await stage(session, Int64Value(value=7), subject=SUBJECT, source=SOURCE)

    rows = await kit.query(
        "SELECT event_id::text, tenant_id, subject, type, source, data FROM outbox"
    )
    assert rows == [
        (
            event_id,
            TENANT,
            SUBJECT,
            "google.protobuf.Int64Value",
            SOURCE,
            Int64Value(value=7).SerializeToString(),
        )
    ]


async def test_a_rolled_back_transaction_leaves_no_event(events_db, kit):
    async def stage_then_fail():
        async with events_db.database.tenant_transaction(TENANT) as session:
            await stage(session, Int64Value(value=1), subject=SUBJECT, source=SOURCE)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await stage_then_fail()

    assert await kit.query("SELECT count(*) FROM outbox") == [(0,)]


async def test_stage_captures_the_current_trace_context(events_db, kit):
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("place order") as span:
        async with events_db.database.tenant_transaction(TENANT) as session:
            await stage(session, Int64Value(value=1), subject=SUBJECT, source=SOURCE)

    [(traceparent,)] = await kit.query("SELECT traceparent FROM outbox")
    assert traceparent.split("-")[1] == format(span.get_span_context().trace_id, "032x")


async def test_an_event_for_another_tenants_subject_is_refused_by_the_database(events_db, kit):
    with pytest.raises(ProgrammingError, match="row-level security"):
        async with events_db.database.tenant_transaction("other") as session:
            await stage(session, Int64Value(value=1), subject=SUBJECT, source=SOURCE)


async def test_a_subject_outside_a_tenant_is_refused_before_any_sql(events_db, kit):
    async with events_db.database.tenant_transaction(TENANT) as session:
        with pytest.raises(InvalidSubjectError):
            await stage(session, Int64Value(), subject="orders/o1", source=SOURCE)


async def test_the_relay_role_without_a_tenant_reads_every_tenants_events(events_db, kit):
    for tenant in ("acme", "globex"):
        async with events_db.database.tenant_transaction(tenant) as session:
            await stage(session, Int64Value(), subject=f"tenants/{tenant}/orders/o1", source=SOURCE)

    async with events_db.database.transaction() as session:
        tenants = (await session.execute(sa.select(outbox_table.c.tenant_id))).scalars().all()

    assert sorted(tenants) == ["acme", "globex"]
