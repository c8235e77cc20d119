"""a two-factor set-up not confirmed yet belongs to the session that started it, for a while

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Before, the secret of a set-up not yet confirmed was shown to every session of the account and kept for ever: a
session stolen once could start a set-up, and the owner later (a new session, after a password reset) was shown
the thief's QR code to scan. ``totp_pending_session_id`` and ``totp_pending_at`` tie it to its session and its
time; a set-up pending at upgrade belongs to no session, so it is shown no more (starting again takes a click).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_pending_session_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("totp_pending_at", models.types.UTCDateTime(), nullable=True))
    users = sa.table("users", sa.column("totp_enabled", sa.Boolean()), sa.column("totp_secret_enc", sa.LargeBinary()))
    op.execute(users.update().where(users.c.totp_enabled.is_(False)).values(totp_secret_enc=None))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_pending_at")
        batch_op.drop_column("totp_pending_session_id")
