"""The events tables confined to a relay role: tenants see only their own event rows.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation
from services.chassis.events.outbox import (
    confine_event_tables,
    create_event_tables,
    drop_event_tables,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables()
    confine_event_tables()
    op.create_table(
        "effects",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
    )
    enable_tenant_isolation("effects")


def downgrade() -> None:
    disable_tenant_isolation("effects")
    op.drop_table("effects")
    drop_event_tables()
