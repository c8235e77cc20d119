"""an account's non-ISO currency

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

``bank_accounts.unofficial_currency_code`` keeps Plaid's code for an account held in a currency without an
ISO 4217 code (crypto such as BTC), so its balances are shown in that currency and its decimals.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unofficial_currency_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_column("unofficial_currency_code")
