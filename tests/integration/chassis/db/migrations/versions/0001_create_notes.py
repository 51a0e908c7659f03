"""Create `notes`, a tenant-scoped table under row-level security.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    enable_tenant_isolation("notes")


def downgrade() -> None:
    disable_tenant_isolation("notes")
    op.drop_table("notes")
