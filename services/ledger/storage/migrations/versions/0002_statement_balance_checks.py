"""Balance checks once per statement, set-based, instead of per posting and per entry;
the chain head locked by SELECT … FOR UPDATE and written once per append.

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
    op.execute((SQL / "0002_balance_checks.sql").read_text())
    enable_tenant_isolation("entry_checks")


def downgrade() -> None:
    disable_tenant_isolation("entry_checks")
    op.execute(
        "DROP TRIGGER journal_entries_balance_queued ON journal_entries;"
        " DROP TRIGGER postings_balance_queued ON postings;"
        " DROP TABLE entry_checks;"
        " DROP FUNCTION ledger_check_queued_entries(), ledger_queue_entry_checks();"
    )
    # Version 1's per-row checks and chain append, exactly as 0001_rules.sql created them.
    rules = (SQL / "0001_rules.sql").read_text()
    start = rules.index("CREATE FUNCTION ledger_check_entry_balanced()")
    end = rules.index("-- Accounts: identity, currency, type and flags never change")
    op.execute(rules[start:end])
    append = rules.index("CREATE FUNCTION ledger_chain_append(")
    op.execute("CREATE OR REPLACE" + rules[append + len("CREATE") :])
