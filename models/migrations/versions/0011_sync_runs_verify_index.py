"""an index for the scheduled self-check

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

The scheduler asks at every tick when each bank was last verified (sync runs with trigger ``verify``):
``ix_sync_runs_trigger_item_started`` answers from the verify runs alone, however long the sync history.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_sync_runs_trigger_item_started", "sync_runs", ["trigger", "item_id", "started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_sync_runs_trigger_item_started", table_name="sync_runs")
