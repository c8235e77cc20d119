"""throttle counters keep their latest times

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``throttle_counters`` counted failures in fixed windows (``window_start``, ``failures``), so a burst
across a window's end was never locked. Each row now keeps the times of its latest counted events
(``recent``, a JSON list) and the latest of them (``last_at``, which retention reads), and the limits
slide. A row counting N failures becomes N failures at its old ``window_start``: they leave the count
when that window would have ended, so an upgrade neither forgets nor extends a count in progress.
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = 16  # services.throttle.KEPT when this was written
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


ROWS = sa.table(
    "throttle_counters",
    sa.column("key", sa.String()),
    sa.column("window_start", models.types.UTCDateTime()),
    sa.column("failures", sa.Integer()),
    sa.column("recent", sa.String()),
)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(STAMP)


def upgrade() -> None:
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recent", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True))
    rows, bind = ROWS, op.get_bind()
    for key, start, failures in bind.execute(sa.select(rows.c.key, rows.c.window_start, rows.c.failures)).all():
        recent = json.dumps([_stamp(start)] * min(max(failures, 0), KEPT), separators=(",", ":"))
        bind.execute(rows.update().where(rows.c.key == key).values(recent=recent))
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.alter_column("recent", existing_type=sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False)
        batch_op.alter_column("window_start", new_column_name="last_at")
        batch_op.drop_column("failures")


def downgrade() -> None:
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), nullable=True))
        batch_op.alter_column("last_at", new_column_name="window_start")
    # The fixed window starts at the oldest time kept, and counts them all.
    rows, bind = ROWS, op.get_bind()
    for key, recent in bind.execute(sa.select(rows.c.key, rows.c.recent)).all():
        times = sorted(datetime.strptime(s, STAMP).replace(tzinfo=UTC) for s in json.loads(recent or "[]"))
        values: dict[str, object] = {"failures": len(times)}
        if times:
            values["window_start"] = times[0]
        bind.execute(rows.update().where(rows.c.key == key).values(**values))
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.alter_column("failures", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("recent")
