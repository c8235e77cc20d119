"""linked banks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "plaid_api_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", models.types.UTCDateTime(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("plaid_api_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plaid_api_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_plaid_api_events_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plaid_api_events_user_id"), ["user_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("received_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("webhook_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("webhook_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("plaid_item_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("signature_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signature_sha256"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_received_at"), ["received_at"], unique=False)

    op.create_table(
        "plaid_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("plaid_item_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("institution_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("institution_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("consent_expires_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("sync_requested_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plaid_item_id"),
    )
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plaid_items_user_id"), ["user_id"], unique=False)

    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("plaid_account_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("official_name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("mask", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subtype", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("iso_currency_code", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
        sa.Column("current_minor", sa.BigInteger(), nullable=True),
        sa.Column("available_minor", sa.BigInteger(), nullable=True),
        sa.Column("limit_minor", sa.BigInteger(), nullable=True),
        sa.Column("institution_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("balance_updated_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("disconnected_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["plaid_items.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plaid_account_id"),
    )
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_accounts_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bank_accounts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "link_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("link_token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("completed_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["plaid_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("link_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_sessions_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_link_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("link_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_link_sessions_item_id"))

    op.drop_table("link_sessions")
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_accounts_user_id"))
        batch_op.drop_index(batch_op.f("ix_bank_accounts_item_id"))

    op.drop_table("bank_accounts")
    with op.batch_alter_table("plaid_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plaid_items_user_id"))

    op.drop_table("plaid_items")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_received_at"))

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("plaid_api_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plaid_api_events_user_id"))
        batch_op.drop_index(batch_op.f("ix_plaid_api_events_item_id"))
        batch_op.drop_index(batch_op.f("ix_plaid_api_events_at"))

    op.drop_table("plaid_api_events")
