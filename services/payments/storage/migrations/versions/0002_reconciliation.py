"""Reconciliation reports (tenant-isolated) and the queue of unfinished runs.

Revision ID: 0002
Revises: 0001
"""

from pathlib import Path

from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQL = Path(__file__).resolve().parents[2] / "sql"


def upgrade() -> None:
    op.execute((SQL / "0002_reconciliation.sql").read_text())
    enable_tenant_isolation("reconciliation_reports")


def downgrade() -> None:
    disable_tenant_isolation("reconciliation_reports")
    op.execute("DROP TABLE reconciliation_runs, reconciliation_reports")
    op.execute("DROP FUNCTION reconciliation_reports_guard")
