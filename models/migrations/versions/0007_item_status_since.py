"""when an item's status was decided

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``plaid_items.status_since`` holds when the status was last decided (the signing time of the webhook
that set it, or the time of a repair), so an ITEM webhook signed earlier that arrives late cannot
overwrite it. Existing rows keep NULL: no constraint until their status next changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_since", models.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.drop_column("status_since")
