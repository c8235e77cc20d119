"""The set-based fast path: a run of only new transactions goes from staging to the ledger in INSERT ... SELECT.

It applies only when the planner would do nothing but insert: every staged change is ``added``, none of
its ids is already in the ledger (no edits to keep, no history to record), and no staged row names a
pending twin that is in the ledger, in the run or among the saved edits of removed rows. Those
conditions are checked inside a savepoint; when one fails, the savepoint is rolled back and the caller
plans the run row by row, so both paths leave the same ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime

from services.money import threshold_minor
from services.notify import NewTransaction
from services.sync_apply import ADDED, PLAID_FIELDS
from services.sync_store import Sql

BULK_CHUNK = 50_000  # staged rows per INSERT ... SELECT (progress is reported between chunks)
_SAVEPOINT = "finsync_bulk_insert"
_TXN_PLAID = tuple(f for f in PLAID_FIELDS if f != "plaid_account_id")
NEWS_FIRST, NEWS_MAX = 20, 200


def _q(name: str) -> str:
    return f'"{name}"'


def all_added(sql: Sql, run_id: uuid.UUID) -> bool:
    """True when every staged change of the run is an ``added`` one."""
    other = sql.run("SELECT 1 FROM sync_staging WHERE run_id = ? AND kind <> ? LIMIT 1", (sql.uid(run_id), ADDED))
    return other.first() is None


def staged_accounts(sql: Sql, run_id: uuid.UUID) -> list[str]:
    """The Plaid account ids the run's staged rows name."""
    rows = sql.run("SELECT DISTINCT plaid_account_id FROM sync_staging WHERE run_id = ?", (sql.uid(run_id),))
    return sorted(r[0] for r in rows if r[0] is not None)


def insert_new(
    sql: Sql,
    *,
    user_id: uuid.UUID,
    item_id: uuid.UUID,
    run_id: uuid.UUID,
    now: datetime,
    report: Callable[[int], None],
) -> int | None:
    """Insert every staged row of an all-added run; the number inserted, or None (nothing written) to plan instead."""
    rid = sql.uid(run_id)
    bounds = sql.run("SELECT count(*), min(seq), max(seq) FROM sync_staging WHERE run_id = ?", (rid,)).one()
    total, first, last = int(bounds[0]), bounds[1], bounds[2]
    if total == 0:
        return 0
    picked = [staged_column(sql, c) for c in _TXN_PLAID]
    cols = ("plaid_transaction_id", "user_id", "account_id", "item_id", *_TXN_PLAID, "excluded", "synced_at")
    statement = (
        f"INSERT INTO transactions ({', '.join(_q(c) for c in cols)}) "  # noqa: S608 - names are constants; values are bound
        f"SELECT s.plaid_transaction_id, ?, a.id, ?, {', '.join(picked)}, ?, ? "
        "FROM sync_staging s JOIN bank_accounts a ON a.plaid_account_id = s.plaid_account_id AND a.item_id = ? "
        "WHERE s.run_id = ? AND s.seq >= ? AND s.seq < ? "
        "ON CONFLICT (plaid_transaction_id) DO NOTHING"
    )
    uid, iid = sql.uid(user_id), sql.uid(item_id)
    sql.run(f"SAVEPOINT {_SAVEPOINT}")
    inserted = 0
    for lo in range(first, last + 1, BULK_CHUNK):
        done = sql.run(statement, (uid, iid, False, sql.ts(now), iid, rid, lo, lo + BULK_CHUNK))
        inserted += done.rowcount
        report(inserted)
    if inserted != total or _needs_planning(sql, rid, uid):
        sql.run(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")  # a conflict, a repeat or a pending twin: plan it instead
        sql.run(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return None
    sql.run(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    return inserted


def staged_column(sql: Sql, column: str) -> str:
    """A staged column as the ledger stores it (staging keeps dates as ISO text; SQLite's DATE is that text)."""
    if column in ("date", "authorized_date") and not sql.sqlite:
        return f"CAST(s.{_q(column)} AS DATE)"
    return f"s.{_q(column)}"


def _needs_planning(sql: Sql, rid: str, uid: str) -> bool:
    """True when a staged row's pending id is in the user's ledger (now including this run) or saved edits, or a
    staged row is itself a removed row whose edits were saved (sent again: its edits come back)."""
    if sql.run("SELECT 1 FROM pending_edits WHERE user_id = ? LIMIT 1", (uid,)).first() is not None:
        again = sql.run(
            "SELECT 1 FROM sync_staging s JOIN pending_edits t ON t.plaid_transaction_id = s.plaid_transaction_id "
            "WHERE s.run_id = ? AND t.user_id = ? LIMIT 1",
            (rid, uid),
        ).first()
        if again is not None:
            return True
    named = "s.pending_transaction_id IS NOT NULL AND s.pending_transaction_id <> s.plaid_transaction_id"
    if sql.run(f"SELECT 1 FROM sync_staging s WHERE s.run_id = ? AND {named} LIMIT 1", (rid,)).first() is None:  # noqa: S608 - constant SQL
        return False
    for table in ("transactions", "pending_edits"):
        hit = sql.run(
            f"SELECT 1 FROM sync_staging s JOIN {table} t ON t.plaid_transaction_id = s.pending_transaction_id "  # noqa: S608 - table names are constants
            f"WHERE s.run_id = ? AND t.user_id = ? AND {named} LIMIT 1",
            (rid, uid),
        ).first()
        if hit is not None:
            return True
    return False


def news_count(sql: Sql, run_id: uuid.UUID, since: date) -> int:
    """How many staged rows of an all-added run are news: dated ``since`` or later (older ones are history)."""
    query = 'SELECT count(*) FROM sync_staging WHERE run_id = ? AND "date" >= ?'  # staging keeps dates as ISO text
    return int(sql.run(query, (sql.uid(run_id), since.isoformat())).one()[0])


def new_rows(sql: Sql, run_id: uuid.UUID, large: int | None, since: date) -> list[NewTransaction]:
    """What the notification lists, as the row-by-row path picks it: the 20 newest (by date, then arrival), then
    large ones in arrival order, up to 200 (of the rows dated ``since`` or later)."""
    cols = (
        'seq, "date", name, amount_minor, COALESCE(iso_currency_code, unofficial_currency_code), plaid_transaction_id'
    )
    rid, day = sql.uid(run_id), since.isoformat()
    rows = sql.run(
        f'SELECT {cols} FROM sync_staging WHERE run_id = ? AND "date" >= ? '  # noqa: S608 - constant SQL
        f'ORDER BY "date" DESC, seq DESC LIMIT {NEWS_FIRST}',
        (rid, day),
    ).fetchall()
    if large is not None and len(rows) == NEWS_FIRST:
        size, sizes = _large_in_each_currency(sql, rid, large)
        listed = {r[0] for r in rows}
        more = sql.run(
            f'SELECT {cols} FROM sync_staging WHERE run_id = ? AND "date" >= ? AND ({size}) '  # noqa: S608 - constant SQL
            f"ORDER BY seq LIMIT {NEWS_MAX}",
            (rid, day, *sizes),
        ).fetchall()
        rows += [r for r in more if r[0] not in listed][: NEWS_MAX - NEWS_FIRST]
    return [NewTransaction(_day(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


def _large_in_each_currency(sql: Sql, rid: str, large: int) -> tuple[str, list[object]]:
    """The SQL condition (and its parameters) for a large amount: the threshold in each staged currency's minor
    units (500.00 is 50000 cents but 500 yen)."""
    code = "COALESCE(iso_currency_code, unofficial_currency_code, '')"
    query = f"SELECT DISTINCT {code} FROM sync_staging WHERE run_id = ?"  # noqa: S608 - constant SQL
    codes = [r[0] for r in sql.run(query, (rid,)).fetchall()]
    condition = " OR ".join(f"({code} = ? AND abs(amount_minor) >= ?)" for _ in codes) or "1 = 0"
    return condition, [v for c in codes for v in (c, threshold_minor(large, c or None))]


def _day(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
