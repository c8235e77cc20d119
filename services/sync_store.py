"""Bulk SQL for the sync: staging pages, reading them back in chunks, and applying a plan.

Plain DB-API statements on the unit of work's connection: SQLAlchemy 2.1 runs an ``ON CONFLICT DO
UPDATE`` executemany one row at a time on psycopg2 (PERFORMANCE_NOTES §1), so PostgreSQL gets
``execute_values`` (multi-row VALUES) and SQLite ``executemany`` (in-process, already fast).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from services.sync_apply import PLAID_FIELDS, Edits, Existing, Plan, Staged

CHUNK = 1000
_STAGE_COLS = ("run_id", "seq", "kind", "plaid_transaction_id", *PLAID_FIELDS)
_TXN_PLAID = tuple(f for f in PLAID_FIELDS if f != "plaid_account_id")
_EDIT_COLS = ("category_override", "note", "tags", "excluded", "user_edited_at")
_TXN_COLS = ("plaid_transaction_id", "user_id", "account_id", "item_id", *_TXN_PLAID, *_EDIT_COLS, "synced_at")
_PENDING = PLAID_FIELDS.index("pending")
_DATES = (PLAID_FIELDS.index("date"), PLAID_FIELDS.index("authorized_date"))


def _q(name: str) -> str:
    return f'"{name}"'


class Sql:
    """Dialect details for raw statements: placeholders, UUID and timestamp encodings, bulk inserts."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.p = "?" if self.sqlite else "%s"

    def uid(self, value: uuid.UUID) -> str:
        """A UUID as the column stores it (SQLAlchemy's ``Uuid``: 32 hex digits on SQLite)."""
        return value.hex if self.sqlite else str(value)

    def ts(self, value: datetime) -> Any:
        """A timestamp as ``UTCDateTime`` stores it."""
        if self.sqlite:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def marks(self, n: int) -> str:
        return ", ".join([self.p] * n)

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.exec_driver_sql(sql.replace("?", self.p), tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement per row (updates and deletes)."""
        if not rows:
            return
        sql = sql.replace("?", self.p)
        if self.sqlite:
            self.conn.exec_driver_sql(sql, [tuple(r) for r in rows])
            return
        from psycopg2.extras import execute_batch

        cur = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        execute_batch(cur, sql, rows, page_size=500)

    def insert(self, table: str, cols: Sequence[str], rows: Sequence[Sequence[Any]], suffix: str = "") -> None:
        """A bulk INSERT (with an optional ON CONFLICT clause) in as few statements as the driver allows."""
        if not rows:
            return
        head = f"INSERT INTO {table} ({', '.join(_q(c) for c in cols)}) VALUES "  # noqa: S608 - table and column names are constants; values are bound
        if self.sqlite:
            self.conn.exec_driver_sql(f"{head}({self.marks(len(cols))}) {suffix}", [tuple(r) for r in rows])
            return
        from psycopg2.extras import execute_values

        cur = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        execute_values(cur, f"{head}%s {suffix}", rows, page_size=1000)

    def copy(self, table: str, cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows with COPY on PostgreSQL (about twice execute_values for staging); ``insert`` on SQLite."""
        if self.sqlite or not rows:
            self.insert(table, cols, rows)
            return
        body = "".join("\t".join(_copy_text(v) for v in r) + "\n" for r in rows)
        cur = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cur.copy_expert(f"COPY {table} ({', '.join(_q(c) for c in cols)}) FROM STDIN", io.StringIO(body))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).translate(_COPY_ESCAPES)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def stage(sql: Sql, run_id: uuid.UUID, first_seq: int, changes: Sequence[tuple[int, str, tuple[Any, ...]]]) -> int:
    """Write fetched changes (kind, id, values) for a run; return the next sequence number."""
    rid = sql.uid(run_id)
    blank = (None,) * len(PLAID_FIELDS)
    rows = [(rid, first_seq + i, kind, tid, *(values or blank)) for i, (kind, tid, values) in enumerate(changes)]
    sql.copy("sync_staging", _STAGE_COLS, rows)
    return first_seq + len(rows)


def drop_staging(sql: Sql, run_ids: Sequence[uuid.UUID]) -> None:
    """Forget the staged rows of these runs."""
    sql.many("DELETE FROM sync_staging WHERE run_id = ?", [(sql.uid(r),) for r in run_ids])


def staged_chunks(sql: Sql, run_id: uuid.UUID, size: int = CHUNK) -> Iterator[list[Staged]]:
    """The staged changes of a run, in order, ``size`` at a time (memory does not grow with history)."""
    cols = ", ".join(_q(c) for c in ("seq", "kind", "plaid_transaction_id", *PLAID_FIELDS))
    last = -1
    while True:
        rows = sql.run(
            f"SELECT {cols} FROM sync_staging WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT {int(size)}",  # noqa: S608 - table and column names are constants; values are bound
            (sql.uid(run_id), last),
        ).fetchall()
        if not rows:
            return
        chunk = []
        for r in rows:
            values: tuple[Any, ...] = ()
            if r[3] is not None or r[1] != 2:
                v = list(r[3:])
                v[_PENDING] = bool(v[_PENDING])
                values = tuple(v)
            chunk.append(Staged(r[0], r[1], r[2], values))
        last = rows[-1][0]
        yield chunk


def _edits(row: Sequence[Any]) -> Edits:
    return Edits(row[0], row[1], row[2], bool(row[3]), row[4])


def load_existing(sql: Sql, user_id: uuid.UUID, ids: Sequence[str]) -> dict[str, Existing]:
    """Ledger rows (with their account's Plaid id) for these transaction ids."""
    if not ids:
        return {}
    cols = ", ".join(f"t.{_q(c)}" for c in (*_TXN_PLAID, *_EDIT_COLS))
    # Look the ids up by primary key and drop other users' rows here: with ``t.user_id = ?`` in the WHERE
    # clause SQLite's planner walks the user's whole ledger by (user_id, date) instead (0.6 s at 1M rows).
    # On PostgreSQL the rows are locked until the apply commits: an edit saved meanwhile waits, so it is
    # either read here (and carried to a posted twin) or finds what the apply left, never lost in between.
    # SQLite needs no lock: the apply holds the only write lock (BEGIN IMMEDIATE) from its start.
    lock = "" if sql.sqlite else " FOR UPDATE OF t"
    rows = sql.run(
        f"SELECT t.plaid_transaction_id, t.user_id, a.plaid_account_id, {cols} FROM transactions t "  # noqa: S608 - table and column names are constants; values are bound
        f"JOIN bank_accounts a ON a.id = t.account_id "
        f"WHERE t.plaid_transaction_id IN ({sql.marks(len(ids))}){lock}",
        tuple(ids),
    ).fetchall()
    out: dict[str, Existing] = {}
    n = len(PLAID_FIELDS)
    owner = sql.uid(user_id)
    for tid, row_owner, *rest in rows:
        if str(row_owner) != owner:
            continue  # another user's transaction: not ours to plan against (the upsert leaves it alone)
        values = rest[:n]
        values[_PENDING] = bool(values[_PENDING])
        for i in _DATES:
            values[i] = _iso(values[i])
        out[tid] = Existing(tuple(values), _edits(rest[n:]))
    return out


def load_tombstones(sql: Sql, user_id: uuid.UUID, ids: Sequence[str]) -> dict[str, Edits]:
    """Saved edits of removed transactions among these ids."""
    if not ids:
        return {}
    rows = sql.run(
        f"SELECT plaid_transaction_id, {', '.join(_EDIT_COLS)} FROM pending_edits "  # noqa: S608 - table and column names are constants; values are bound
        f"WHERE user_id = ? AND plaid_transaction_id IN ({sql.marks(len(ids))})",
        (sql.uid(user_id), *ids),
    ).fetchall()
    return {r[0]: _edits(r[1:]) for r in rows}


def write_plan(
    sql: Sql,
    plan: Plan,
    *,
    user_id: uuid.UUID,
    item_id: uuid.UUID,
    run_id: uuid.UUID,
    accounts: dict[str, uuid.UUID],
    now: datetime,
) -> None:
    """Apply one chunk's plan inside the caller's transaction."""
    uid, iid, stamp = sql.uid(user_id), sql.uid(item_id), sql.ts(now)
    rows = []
    for tid, (values, e) in plan.upserts.items():
        account = sql.uid(accounts[values[0]])
        edited = sql.ts(e.user_edited_at) if isinstance(e.user_edited_at, datetime) else e.user_edited_at
        rows.append(
            (tid, uid, account, iid, *values[1:], e.category_override, e.note, e.tags, e.excluded, edited, stamp)
        )
    updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in ("account_id", "item_id", *_TXN_PLAID, "synced_at"))
    sql.insert(
        "transactions",
        _TXN_COLS,
        rows,
        f"ON CONFLICT (plaid_transaction_id) DO UPDATE SET {updates} WHERE transactions.user_id = excluded.user_id",
    )
    sql.many(
        "UPDATE transactions SET category_override = ?, note = ?, tags = ?, excluded = ?, user_edited_at = ? "
        "WHERE plaid_transaction_id = ? AND user_id = ?",
        [(e.category_override, e.note, e.tags, e.excluded, e.user_edited_at, tid, uid) for tid, e in plan.carry],
    )
    rid = sql.uid(run_id)
    sql.insert(
        "transaction_history",
        ("user_id", "plaid_transaction_id", "run_id", "changed_at", "field_name", "old_value", "new_value"),
        [(uid, tid, rid, stamp, f, _cut(old), _cut(new)) for tid, f, old, new in plan.history],
    )
    sql.many(
        "UPDATE transaction_history SET plaid_transaction_id = ? WHERE plaid_transaction_id = ? AND user_id = ?",
        [(new, old, uid) for old, new in plan.history_moves],
    )
    sql.many(  # first: a saved row used up and saved again in one chunk (sent again, then removed) is saved anew
        "DELETE FROM pending_edits WHERE plaid_transaction_id = ? AND user_id = ?",
        [(t, uid) for t in plan.tombstones_used],
    )
    sql.insert(
        "pending_edits",
        ("plaid_transaction_id", "user_id", "item_id", *_EDIT_COLS, "removed_at"),
        [
            (tid, uid, iid, e.category_override, e.note, e.tags, e.excluded, e.user_edited_at, stamp)
            for tid, e in plan.tombstones
        ],
        "ON CONFLICT (plaid_transaction_id) DO NOTHING",
    )
    kept = {tid for tid, _ in plan.tombstones}
    sql.many(
        "DELETE FROM transactions WHERE plaid_transaction_id = ? AND user_id = ?", [(t, uid) for t in plan.deletes]
    )
    sql.many(
        "DELETE FROM transaction_history WHERE plaid_transaction_id = ? AND user_id = ?",
        [(t, uid) for t in plan.deletes if t not in kept],
    )


_UNEDITED = (
    "COALESCE(category_override, '') = '' AND COALESCE(note, '') = '' AND COALESCE(tags, '') = '' AND excluded = ?"
)


TWIN_WAIT = timedelta(days=14)  # how long a removed row waits for its posted twin or its return (holds last days)


def forget_unedited_tombstones(sql: Sql, user_id: uuid.UUID, now: datetime) -> None:
    """Drop the user's tombstones of unedited rows whose posted twin (or the row itself) has not come in ``TWIN_WAIT``.

    While one waits, a twin that comes in a later sync still takes the pending row's history, and a row the bank
    sends again keeps its own; neither is announced as news a second time. Kept for good they would pile up with
    every hold that never posts. A tombstone that holds edits stays until its row comes.
    """
    uid, before = sql.uid(user_id), sql.ts(now - TWIN_WAIT)
    stale = f"user_id = ? AND removed_at < ? AND {_UNEDITED}"
    sql.run(
        "DELETE FROM transaction_history WHERE user_id = ? AND plaid_transaction_id IN "  # noqa: S608 - constant SQL
        f"(SELECT plaid_transaction_id FROM pending_edits WHERE {stale})",
        (uid, uid, before, False),
    )
    sql.run(f"DELETE FROM pending_edits WHERE {stale}", (uid, before, False))  # noqa: S608 - constant SQL


def _cut(value: str | None) -> str | None:
    return None if value is None else value[:512]
