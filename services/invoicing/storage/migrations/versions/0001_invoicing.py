"""Create invoicing: invoices, payments, credit notes, counters, configs, keys, RLS, outbox.

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
    "invoices",
    "invoice_payments",
    "credit_notes",
    "number_counters",
    "numbering_configs",
    "idempotency_keys",
)


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
        "DROP TABLE idempotency_keys, numbering_configs, number_counters, credit_notes,"
        " invoice_payments, invoices CASCADE"
    )
    op.execute(
        "DROP FUNCTION invoicing_guard_invoice, invoicing_guard_credit_note,"
        " invoicing_guard_counter"
    )
