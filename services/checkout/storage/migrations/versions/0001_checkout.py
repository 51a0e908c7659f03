"""Create the checkout database: checkouts, orders, order history, idempotency keys, RLS, outbox.

Revision ID: 0001
Revises:
"""

from pathlib import Path

from alembic import op

from services.chassis.db.rls import (
    CURRENT_TENANT,
    disable_tenant_isolation,
    enable_tenant_isolation,
)
from services.chassis.events.outbox import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parents[2] / "sql"
TENANT_TABLES = ("checkouts", "orders", "order_history", "idempotency_keys")


def upgrade() -> None:
    op.execute((SQL / "0001_tables.sql").read_text())
    for table in TENANT_TABLES:
        enable_tenant_isolation(table)
    # The recovery worker lists tenants with no tenant set; a transaction registers only its own.
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tenants_read_all ON tenants FOR SELECT TO PUBLIC USING (true)")
    op.execute(
        "CREATE POLICY tenants_register_own ON tenants FOR INSERT TO PUBLIC "
        f"WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
    for table in TENANT_TABLES:
        disable_tenant_isolation(table)
    op.execute("DROP TABLE idempotency_keys, order_history, orders, checkouts, tenants CASCADE")
    op.execute("DROP FUNCTION checkout_refuse_change")
