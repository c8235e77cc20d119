"""saved edits of removed holds know their bank: pending_edits.item_id

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Removing a bank left the user's notes on its dropped holds in ``pending_edits`` for ever: nothing said which bank
they came from. New ones carry ``item_id``, and removing a bank deletes its own. Older rows stay NULL (no record
says whose they were); a removal that leaves the user no bank at all deletes those too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pending_edits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("item_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_pending_edits_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_edits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_edits_item_id"))
        batch_op.drop_column("item_id")
