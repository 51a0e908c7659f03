"""Ledger journals due: revenue, tax, receivable and customer-funds movements to post.

Revision ID: 0002
Revises: 0001
"""

from pathlib import Path

from alembic import op

from services.chassis.db.rls import CURRENT_TENANT

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parents[2] / "sql"
TABLE = "ledger_postings_due"


def upgrade() -> None:
    op.execute((SQL / "0002_ledger_postings_due.sql").read_text())
    # As the chassis outbox: a tenant transaction inserts only its own tenant's journals; the
    # poster worker (no tenant) reads and marks every tenant's, and prunes posted ones.
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {TABLE}_insert_own_tenant ON {TABLE} FOR INSERT TO PUBLIC "
        f"WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"CREATE POLICY {TABLE}_read_all ON {TABLE} FOR SELECT TO PUBLIC USING (true)")
    op.execute(
        f"CREATE POLICY {TABLE}_update_all ON {TABLE} FOR UPDATE TO PUBLIC "
        "USING (true) WITH CHECK (true)"
    )
    op.execute(
        f"CREATE POLICY {TABLE}_delete_posted ON {TABLE} FOR DELETE TO PUBLIC "
        "USING (posted_time IS NOT NULL)"
    )


def downgrade() -> None:
    op.execute(f"DROP TABLE {TABLE}")
    op.execute("DROP FUNCTION invoicing_guard_ledger_posting")
