"""the digest email waits for the next one an hour: digest_state and digest_items

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

A sync that brings new transactions no longer mails its own digest each time: at most one digest goes out per
user an hour, covering every bank. ``digest_state`` holds when the last one went out; ``digest_items`` the
new transactions that wait (each standing for ``count`` of them), going with their bank if it is removed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_state",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sent_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "digest_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("institution", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("added_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["plaid_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("digest_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_digest_items_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_digest_items_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("digest_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_items_user_id"))
        batch_op.drop_index(batch_op.f("ix_digest_items_item_id"))
    op.drop_table("digest_items")
    op.drop_table("digest_state")
