"""transactions set aside by the sync

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

A transaction the bank sends that cannot be read (an amount that is not money, a missing field) is
kept in ``sync_quarantine`` with the reason, instead of failing every sync of its item.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_quarantine",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plaid_transaction_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("first_seen_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["plaid_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sync_quarantine_user_id"), "sync_quarantine", ["user_id"], unique=False)
    op.create_index("ux_sync_quarantine_item_txn", "sync_quarantine", ["item_id", "plaid_transaction_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_sync_quarantine_item_txn", table_name="sync_quarantine")
    op.drop_index(op.f("ix_sync_quarantine_user_id"), table_name="sync_quarantine")
    op.drop_table("sync_quarantine")
