"""Create payments: tables, rules, row-level security, outbox.

Revision ID: 0001
Revises:
"""

from pathlib import Path

from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation
from services.chassis.events.outbox import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parents[2] / "sql"
TENANT_TABLES = (
    "payments",
    "payment_transitions",
    "payment_attempts",
    "refunds",
    "idempotency_records",
    "routing_configs",
)
# Service-wide tables (psp_references, webhook_events, unresolved_outcomes,
# expiring_authorizations) hold no money
# and no personal data: PSP ids, event ids and payment ids for webhooks and the resolver,
# which work before a tenant is known.


def upgrade() -> None:
    op.execute((SQL / "0001_tables.sql").read_text())
    op.execute((SQL / "0001_rules.sql").read_text())
    for table in TENANT_TABLES:
        enable_tenant_isolation(table)
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
    for table in TENANT_TABLES:
        disable_tenant_isolation(table)
    op.execute(
        "DROP TABLE expiring_authorizations, unresolved_outcomes, webhook_requests, webhook_events,"
        " psp_references,"
        " routing_configs, idempotency_records, refunds, payment_attempts, payment_transitions,"
        " payments CASCADE"
    )
    op.execute(
        "DROP FUNCTION payments_guard_idempotency, payments_check_refunds,"
        " payments_guard_immutable, payments_refuse_change"
    )
