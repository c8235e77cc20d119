"""new accounts at the bank are remembered apart from the status: plaid_items.new_accounts_since

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

NEW_ACCOUNTS_AVAILABLE only set the item's status, so worse news arriving before the user acted (the login
expiring, consent running out) replaced it, and the repair that followed opened Link without the account picker:
the new accounts could never be added. Plaid sends that webhook once, so it is now kept in its own column until an
update-mode Link with the picker answers it. Older rows stay NULL (their status still says so, if it does).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_accounts_since", models.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.drop_column("new_accounts_since")
