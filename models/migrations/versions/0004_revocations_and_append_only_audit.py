"""plaid revocation queue; append-only audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

``plaid_revocations`` keeps (encrypted) the tokens of deleted items that Plaid has not confirmed
revoking, for retry. Triggers make ``audit_events`` append-only on both databases: DELETE is refused,
and so is every UPDATE except the one account deletion makes, setting ``ip`` and/or ``detail`` to ''
with every other column unchanged. On SQLite, a later batch migration that recreates ``audit_events``
drops these triggers with the old table: such a migration must create them again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = "audit_events is append-only: rows cannot be deleted, and only ip and detail can be blanked"

# Every column but ip and detail unchanged (NULL-safe), ip and detail each unchanged or ''.
_UNCHANGED = {
    "sqlite": "NEW.{c} IS OLD.{c}",
    "postgresql": "NEW.{c} IS NOT DISTINCT FROM OLD.{c}",
}
_KEPT_COLUMNS = ("id", "at", "user_id", "actor_id", "event")


def _anonymising_only(dialect: str) -> str:
    same = " AND ".join(_UNCHANGED[dialect].format(c=c) for c in _KEPT_COLUMNS)
    return f"{same} AND (NEW.ip = OLD.ip OR NEW.ip = '') AND (NEW.detail = OLD.detail OR NEW.detail = '')"


def _create_audit_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"WHEN NOT ({_anonymising_only('sqlite')}) "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )
    elif dialect == "postgresql":
        # SQLSTATE 23000 (integrity_constraint_violation): both drivers then raise an IntegrityError.
        allowed = _anonymising_only("postgresql")
        op.execute(f"""
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND {allowed} THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = '23000';
            END
            $$
        """)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        raise NotImplementedError(f"no append-only triggers for {dialect}")


def _drop_audit_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")


def upgrade() -> None:
    op.create_table(
        "plaid_revocations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plaid_item_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("institution_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("plaid_revocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plaid_revocations_next_attempt_at"), ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_plaid_revocations_outcome"), ["outcome"], unique=False)

    _create_audit_triggers(op.get_bind().dialect.name)


def downgrade() -> None:
    _drop_audit_triggers(op.get_bind().dialect.name)

    with op.batch_alter_table("plaid_revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plaid_revocations_outcome"))
        batch_op.drop_index(batch_op.f("ix_plaid_revocations_next_attempt_at"))

    op.drop_table("plaid_revocations")
