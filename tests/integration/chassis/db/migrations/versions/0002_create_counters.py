"""Create `counters`, a tenant-scoped table keyed by a serial sequence.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from services.chassis.db.rls import disable_tenant_isolation, enable_tenant_isolation

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A serial (sequence-backed) key proves the app role's default grant on sequences.
    op.execute(
        "CREATE TABLE counters ("
        "id bigserial PRIMARY KEY, tenant_id text NOT NULL, value bigint NOT NULL DEFAULT 0)"
    )
    enable_tenant_isolation("counters")


def downgrade() -> None:
    disable_tenant_isolation("counters")
    op.drop_table("counters")
