"""a bank removed with its history kept keeps its sync runs too

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

Before, removing a bank deleted its runs by cascade even when the user chose to keep its history: the Sync history
page forgot every sync of a bank whose transactions were still in the ledger. ``sync_runs.item_id`` now becomes
NULL when its bank goes (the removal itself deletes the runs when the history is not kept), and ``institution_name``
keeps the bank's name, which that removal writes. Going down deletes the runs of removed banks first: the old
column cannot hold a run without its bank.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "sync_runs_item_id_fkey"  # PostgreSQL's own name for the key 0003 made; on SQLite that key had none
CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}  # how batch mode names one


def _item_fk() -> str:
    """The name of the foreign key on ``sync_runs.item_id`` as the database has it (unnamed: by CONVENTION)."""
    keys = sa.inspect(op.get_bind()).get_foreign_keys("sync_runs")
    name = next(k["name"] for k in keys if k["constrained_columns"] == ["item_id"])
    return name or "fk_sync_runs_item_id_plaid_items"


def upgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None, naming_convention=CONVENTION) as batch_op:
        batch_op.drop_constraint(_item_fk(), type_="foreignkey")
        batch_op.add_column(sa.Column("institution_name", sa.String(length=128), server_default="", nullable=False))
        batch_op.alter_column("item_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_foreign_key(FK, "plaid_items", ["item_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    op.execute("DELETE FROM sync_runs WHERE item_id IS NULL")
    with op.batch_alter_table("sync_runs", schema=None, naming_convention=CONVENTION) as batch_op:
        batch_op.drop_constraint(_item_fk(), type_="foreignkey")
        batch_op.alter_column("item_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("institution_name")
        batch_op.create_foreign_key(FK, "plaid_items", ["item_id"], ["id"], ondelete="CASCADE")
