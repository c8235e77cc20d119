"""mail queue

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

``mail_queue`` holds outgoing mail (encrypted, bound to its row) until the mailer takes it, so an SMTP
outage delays a verification or reset email instead of losing it. Rows go once sent or past their use.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_queue",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("message_enc", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mail_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_queue_next_attempt_at"), ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_mail_queue_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_queue_user_id"))
        batch_op.drop_index(batch_op.f("ix_mail_queue_next_attempt_at"))
    op.drop_table("mail_queue")
