"""a set-aside posted transaction names its pending twin

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

``sync_quarantine.pending_transaction_id``: the pending transaction a set-aside (unreadable) posted one
replaces. The sync keeps that pending row in the ledger while its twin is set aside; when the bank then
removes the twin, the pending row goes with it. Rows set aside before this revision take the id from
their kept JSON where it can be read.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS = sa.table(
    "sync_quarantine",
    sa.column("id", sa.Uuid()),
    sa.column("excerpt", sa.Text()),
    sa.column("pending_transaction_id", sa.String()),
)


def _twin(excerpt: str) -> str | None:
    try:
        body = json.loads(excerpt)
    except ValueError:
        return None  # cut short: nothing to go by
    twin = body.get("pending_transaction_id") if isinstance(body, dict) else None
    # As the mapping reads ids: printable (PostgreSQL refuses a NUL in text) and at most 128 characters.
    return twin if isinstance(twin, str) and 0 < len(twin) <= 128 and twin.isprintable() else None


def upgrade() -> None:
    with op.batch_alter_table("sync_quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_transaction_id", sa.String(length=128), nullable=True))
    rows, bind = ROWS, op.get_bind()
    for row_id, excerpt in bind.execute(sa.select(rows.c.id, rows.c.excerpt)).all():
        twin = _twin(excerpt)
        if twin is not None:
            bind.execute(rows.update().where(rows.c.id == row_id).values(pending_transaction_id=twin))


def downgrade() -> None:
    with op.batch_alter_table("sync_quarantine", schema=None) as batch_op:
        batch_op.drop_column("pending_transaction_id")
