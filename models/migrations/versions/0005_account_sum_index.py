"""covering index for the after-sync balance check

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

The balance check sums each synced account's posted amounts. With only an index on ``account_id`` that
read every row of the account (0.56 s of a 100-change sync on SQLite with 1,000,000 transactions); an
index on (account_id, pending, amount_minor) answers it from the index alone and still serves the
foreign key, so it replaces ``ix_transactions_account_id``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transactions_account_id"))
        batch_op.create_index(
            "ix_transactions_account_pending_amount", ["account_id", "pending", "amount_minor"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_account_pending_amount")
        batch_op.create_index(batch_op.f("ix_transactions_account_id"), ["account_id"], unique=False)
