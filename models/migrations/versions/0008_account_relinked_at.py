"""when a new link took a kept account back

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

``bank_accounts.relinked_at`` marks an account kept after its bank was removed ("keep history") and taken
back when the same login was linked again; while it is set, syncs match the kept transactions with the
ones the new link sends, so the history is continued rather than doubled. Existing rows keep NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relinked_at", models.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_column("relinked_at")
