"""Create the outbox and inbox, and `effects`, a tenant-scoped table the test consumers write.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation
from services.chassis.events.outbox import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables()
    op.create_table(
        "effects",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=True),
    )
    enable_tenant_isolation("effects")


def downgrade() -> None:
    disable_tenant_isolation("effects")
    op.drop_table("effects")
    drop_event_tables()
