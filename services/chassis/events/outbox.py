"""The outbox and inbox tables, their migration, and `stage()`: an event in the caller's tx.

The outbox is read by the relay across all tenants, so it cannot use the tenant-isolation
policy of service tables. Instead (ADR 0006) both tables carry `tenant_id` and a policy that
lets a transaction *insert* only rows of its own tenant (`app.tenant_id`), while reads and
updates are open to the service's role: the relay and the operator CLI connect without a
tenant, and nothing in these tables is served to tenants.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf.message import Message
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.db.rls import CURRENT_TENANT
from services.chassis.events import tracecontext
from services.chassis.events.subject import tenant_of_subject

OUTBOX = "outbox"
INBOX = "inbox"
# Advisory-lock class for "an event of this subject is being staged" (two-int key space, so
# it never collides with single-bigint advisory locks such as the migration lock).
SUBJECT_LOCK_CLASS = 0x636D6576  # "cmev"
# `stage()` notifies this channel (delivered at commit, once per transaction); relays LISTEN
# to it so a committed event goes out at once instead of at the next poll (ADR 0017).
NOTIFY_CHANNEL = "commerce_outbox"

metadata = sa.MetaData()


def _outbox_columns() -> list[sa.Column[Any]]:
    return [
        # Identity order is per-subject commit order: see `stage` (the subject lock).
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("tracestate", sa.Text, nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _inbox_columns() -> list[sa.Column[Any]]:
    return [
        # The consumer (subscription) that applied the event: one event, one effect per consumer.
        sa.Column("consumer", sa.Text, primary_key=True),
        # CloudEvents ids are strings; other producers need not use UUIDs.
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
    ]


outbox_table = sa.Table(OUTBOX, metadata, *_outbox_columns())
inbox_table = sa.Table(INBOX, metadata, *_inbox_columns())

# Index name -> (table, columns, partial predicate).
_INDEXES: dict[str, tuple[str, list[str], str | None]] = {
    # The relay's scan: unpublished rows in position order.
    "outbox_unpublished_idx": (OUTBOX, ["position"], "published_at IS NULL"),
    # The relay's per-subject order check and `backlog` per subject.
    "outbox_unpublished_subject_idx": (OUTBOX, ["subject", "position"], "published_at IS NULL"),
    # Pruning published rows by age.
    "outbox_published_at_idx": (OUTBOX, ["published_at"], "published_at IS NOT NULL"),
    "inbox_processed_at_idx": (INBOX, ["processed_at"], None),
}


def event_table_policy_statements(table: str) -> list[str]:
    """RLS for an event table: insert only your own tenant's rows; read and update any."""
    if table not in (OUTBOX, INBOX):
        raise ValueError(f"not an event table: {table!r}")
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        (
            f"CREATE POLICY {table}_insert_own_tenant ON {table} FOR INSERT TO PUBLIC "
            f"WITH CHECK (tenant_id = {CURRENT_TENANT})"
        ),
        f"CREATE POLICY {table}_read_all ON {table} FOR SELECT TO PUBLIC USING (true)",
        (
            f"CREATE POLICY {table}_update_all ON {table} FOR UPDATE TO PUBLIC "
            "USING (true) WITH CHECK (true)"
        ),
        f"CREATE POLICY {table}_delete_all ON {table} FOR DELETE TO PUBLIC USING (true)",
    ]


def _quoted(role: str) -> str:
    if not role.replace("_", "").isalnum() or not role.islower():
        raise ValueError(f"not a plain lower-case role name: {role[:80]!r}")
    return f'"{role}"'


def confine_event_tables_statements(relay_role: str) -> list[str]:
    """SQL of `confine_event_tables`: tenants see only their own event rows; the relay sees all.

    The service's role may then read only its tenant's outbox and inbox rows (and insert them,
    as before), and may no longer update or delete them. `relay_role` (no BYPASSRLS either)
    may read every tenant's rows, set `published_at`, and delete (prune) rows; it has no
    grant on any other table.
    """
    relay = _quoted(relay_role)
    statements = [f"GRANT USAGE ON SCHEMA public TO {relay}"]
    statements += [
        f"GRANT SELECT, UPDATE (published_at), DELETE ON {OUTBOX} TO {relay}",
        f"GRANT SELECT, DELETE ON {INBOX} TO {relay}",
    ]
    for table in (OUTBOX, INBOX):
        statements += [
            f"DROP POLICY IF EXISTS {table}_read_all ON {table}",
            f"DROP POLICY IF EXISTS {table}_update_all ON {table}",
            f"DROP POLICY IF EXISTS {table}_delete_all ON {table}",
            (
                f"CREATE POLICY {table}_read_own_tenant ON {table} FOR SELECT TO PUBLIC "
                f"USING (tenant_id = {CURRENT_TENANT})"
            ),
            f"CREATE POLICY {table}_relay_read ON {table} FOR SELECT TO {relay} USING (true)",
            f"CREATE POLICY {table}_relay_delete ON {table} FOR DELETE TO {relay} USING (true)",
        ]
    statements.append(
        f"CREATE POLICY {OUTBOX}_relay_update ON {OUTBOX} FOR UPDATE TO {relay} "
        "USING (true) WITH CHECK (true)"
    )
    return statements


def confine_event_tables(relay_role: str | None = None) -> None:
    """In a service's Alembic `upgrade()` (after `create_event_tables`): see
    `confine_event_tables_statements`. The relay role defaults to `<database>_relay`, which
    `provision_relay_role` creates; it must exist before this migration runs."""
    bind = op.get_bind()
    role = relay_role or f"{bind.execute(sa.text('SELECT current_database()')).scalar_one()}_relay"
    if (
        bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        is None
    ):
        raise RuntimeError(f"role {role} does not exist: run provision_relay_role first")
    for statement in confine_event_tables_statements(role):
        op.execute(statement)


def create_event_tables() -> None:
    """In a service's Alembic `upgrade()`: create `outbox` and `inbox`, indexes and policies."""
    op.create_table(OUTBOX, *_outbox_columns())
    op.create_table(INBOX, *_inbox_columns())
    for name, (table, columns, where) in _INDEXES.items():
        predicate = sa.text(where) if where else None
        op.create_index(name, table, columns, postgresql_where=predicate)
    for table in (OUTBOX, INBOX):
        for statement in event_table_policy_statements(table):
            op.execute(statement)


def drop_event_tables() -> None:
    """In a service's Alembic `downgrade()`: the inverse of `create_event_tables`."""
    op.drop_table(INBOX)
    op.drop_table(OUTBOX)


def event_type(event: Message) -> str:
    """`ce-type`: the event's full proto name, e.g. `commerce.ledger.v1.JournalEntryPosted`."""
    return str(event.DESCRIPTOR.full_name)


async def stage(session: AsyncSession, event: Message, *, subject: str, source: str) -> str:
    """Write `event` to the outbox in the caller's open transaction; return its `ce-id`.

    `subject` is the aggregate's resource name (the ordering key); its tenant must be the
    transaction's tenant (the insert policy refuses anything else). The current W3C trace
    context is captured now, so the consumer's span continues this trace.

    Staging takes a transaction-scoped lock on the subject, so transactions that raise events
    for one aggregate commit one after another and outbox positions follow commit order per
    aggregate (ADR 0006). Stage the events of several aggregates in a stable order (e.g.
    sorted by subject) to avoid deadlocks between such transactions.
    """
    tenant_id = tenant_of_subject(subject)
    if not source:
        raise ValueError("an event needs a source, e.g. //commerce-mesh/ledger")
    event_id = uuid.uuid4()
    trace = tracecontext.capture()
    # One round trip: the subject lock, and the relay's wake-up call (sent only on commit;
    # PostgreSQL folds a transaction's identical notifications into one).
    await session.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(:lock_class, hashtext(:subject)), pg_notify(:channel, '')"
        ),
        {"lock_class": SUBJECT_LOCK_CLASS, "subject": subject, "channel": NOTIFY_CHANNEL},
    )
    await session.execute(
        sa.insert(outbox_table).values(
            event_id=event_id,
            tenant_id=tenant_id,
            subject=subject,
            type=event_type(event),
            source=source,
            time=datetime.now(UTC),
            data=event.SerializeToString(deterministic=True),
            traceparent=trace.get(tracecontext.TRACEPARENT),
            tracestate=trace.get(tracecontext.TRACESTATE),
        )
    )
    return str(event_id)
