"""Create the outbox and inbox: the benchmark's consumer effect is its inbox row.

Revision ID: 0001
Revises:
"""

from services.chassis.events.outbox import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
