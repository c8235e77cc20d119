"""Sync end to end against the demo bank over loopback HTTP, with a raw-write baseline in the same run.

Usage: .venv/bin/python bench/bench_sync.py initial --db sqlite|postgresql [--transactions N] [--bank B]
       .venv/bin/python bench/bench_sync.py incremental --db sqlite|postgresql [--history N] [--changes K] [--bank B]
PostgreSQL reads BENCH_POSTGRES_URL (a database it may create tables in; a fresh one is made per run).
``--bank process`` (the default) runs the demo bank in its own process (bench/bank_process.py), so the
figures are finsync's own; ``--bank thread`` runs it in this process, competing for the GIL as before.
Peak memory: this process's peak RSS growth during the sync (with ``--bank thread`` it includes the bank's).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from sqlalchemy import text

from bench.bank_process import RemoteBank
from services import migrations, sync_fetch
from services.container import build_container
from services.db import make_engine, unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, start_demo_bank
from services.plaid_client import PlaidGateway
from services.sync_engine import sync_item
from tests.factories import FakeClock, make_settings
from tests.integration.sync_helpers import link_item, make_user

COLS = (
    "plaid_transaction_id, user_id, account_id, item_id, amount_minor, iso_currency_code, unofficial_currency_code, "
    '"date", authorized_date, name, merchant_name, pending, pending_transaction_id, category_primary, '
    "category_detailed, payment_channel, category_override, note, tags, excluded, user_edited_at, synced_at"
)


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """The current RSS, after resetting the kernel's peak-RSS mark (Linux clear_refs 5), so peak_mib() is ours."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """Peak RSS since the last rss_mib()."""
    return _status_mib("VmHWM")


def database(kind: str, tmp: Path) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    base = os.environ["BENCH_POSTGRES_URL"]
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    name = f"finsync_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    from sqlalchemy.engine import make_url

    return make_url(base).set(database=name).render_as_string(hide_password=False), (admin, name)


def drop(handle: object) -> None:
    if handle is None:
        return
    admin, name = handle  # type: ignore[misc]
    for _ in range(30):  # autovacuum (a superuser backend we may not terminate) may still be on the new rows
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except Exception:
            time.sleep(1)
    print(f"could not drop the benchmark database {name}; drop it by hand")


def raw_baseline(engine, kind: str, table: str = "bench_raw", all_indexes: bool = True) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Copy the ledger's rows into an identical empty table with a raw executemany, one transaction.

    ``all_indexes=False`` (SQLite only) gives the table just its primary key and (user_id, date), the
    baseline this benchmark used before 2026-11-27, printed too so the two can be compared.
    """
    with engine.begin() as conn:
        rows = conn.exec_driver_sql(f"SELECT {COLS} FROM transactions").fetchall()
        if kind == "sqlite":
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'transactions'").scalar()
            conn.exec_driver_sql(ddl.replace("CREATE TABLE transactions", f"CREATE TABLE {table}", 1))
            indexes = conn.exec_driver_sql(  # every index of the ledger (as PostgreSQL's LIKE ... INCLUDING ALL)
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions' AND sql IS NOT NULL"
            ).fetchall()
            if not all_indexes:
                indexes = [(n, q) for n, q in indexes if n == "ix_transactions_user_date"]
            for name, sql in indexes:
                conn.exec_driver_sql(
                    sql.replace(name, f"{table}_{name}", 1).replace(" ON transactions ", f" ON {table} ", 1)
                )
        else:
            conn.exec_driver_sql(f"CREATE TABLE {table} (LIKE transactions INCLUDING ALL)")
    rows = [tuple(r) for r in rows]
    started = time.perf_counter()
    with engine.begin() as conn:
        dbapi = conn.connection.dbapi_connection
        cur = dbapi.cursor()
        if kind == "sqlite":
            cur.executemany(f"INSERT INTO {table} ({COLS}) VALUES ({', '.join(['?'] * 22)})", rows)
        else:
            from psycopg2.extras import execute_values

            execute_values(cur, f"INSERT INTO {table} ({COLS}) VALUES %s", rows, page_size=1000)
    return len(rows), time.perf_counter() - started


class ThreadBank:
    """The demo bank in this process, with RemoteBank's interface."""

    def __init__(self) -> None:
        self.handle = start_demo_bank()
        self.url = self.handle.url

    def generate_history(self, item: str, count: int) -> None:
        self.handle.generate_history(item, count)

    def ids(self, item: str, limit: int) -> list[str]:
        return [t["transaction_id"] for t in self.handle.truth(item)[:limit]]

    def mutate(self, item: str, action: str, **fields: object) -> None:
        self.handle.mutate(item, action, **fields)

    def stop(self) -> None:
        self.handle.stop()


def setup(kind: str, tmp: Path, history: int, where: str):  # type: ignore[no-untyped-def]
    url, handle = database(kind, tmp)
    engine = make_engine(url)
    migrations.upgrade(engine)
    c = build_container(make_settings(tmp / "data", url), engine=engine, clock=FakeClock())
    bank = RemoteBank() if where == "process" else ThreadBank()
    gw = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, bank.url, timeout=(5.0, 120.0))
    user_id = make_user(c)
    item_id, pid = link_item(c, gw, user_id)
    t0 = time.perf_counter()
    bank.generate_history(pid, history)
    print(f"history: {history:,} extra transactions generated in {time.perf_counter() - t0:.2f} s")
    return c, bank, gw, user_id, item_id, pid, handle


def initial(kind: str, n: int, where: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        c, bank, gw, user_id, item_id, _pid, handle = setup(kind, Path(d), n, where)
        before = rss_mib()
        t0 = time.perf_counter()
        r = sync_item(c, user_id, item_id, gateway=gw)
        took = time.perf_counter() - t0
        growth = peak_mib() - before
        assert r.status == "ok", r
        rows, raw = raw_baseline(c.engine, kind)
        print(
            f"[{kind}] initial sync  : {r.added:,} txns, {r.pages} pages in {took:.2f} s = {r.added / took:,.0f} txns/s"
        )
        print(
            f"[{kind}] raw executemany: {rows:,} rows in {raw:.2f} s = {rows / raw:,.0f} rows/s (one txn, same table shape)"
        )
        print(f"[{kind}] ratio end-to-end / raw: {took / raw:.2f}x ;  peak RSS growth during sync: {growth:.0f} MiB")
        if kind == "sqlite":
            _, fewer = raw_baseline(c.engine, kind, "bench_raw_2ix", all_indexes=False)
            print(f"[{kind}] (raw into a table with 2 of the ledger's 5 indexes, the old baseline: {fewer:.2f} s, "
                  f"ratio {took / fewer:.2f}x)")  # fmt: skip
        bank.stop()
        c.engine.dispose()
        drop(handle)


def incremental(kind: str, history: int, changes: int, where: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        c, bank, gw, user_id, item_id, pid, handle = setup(kind, Path(d), history, where)
        t0 = time.perf_counter()
        # Setup only: a first sync of 1M rows is 2,000 pages, past the product's bound of MAX_PAGES a run
        # (SECURITY_BAR M10), so the bound is lifted for it; the measured incremental run is one page.
        bound, sync_fetch.MAX_PAGES = sync_fetch.MAX_PAGES, 10**6
        try:
            first = sync_item(c, user_id, item_id, gateway=gw)
        finally:
            sync_fetch.MAX_PAGES = bound
        assert first.status == "ok", first
        print(
            f"[{kind}] initial sync of {first.added:,} in {time.perf_counter() - t0:.1f} s (setup, page bound lifted)"
        )
        if kind == "postgresql":  # planner statistics after the bulk load, as autovacuum gathers them within a minute
            with c.engine.connect() as conn:  # (left to chance, the measured run took 0.43 s or 0.9 s by its timing)
                conn.execute(text("ANALYZE transactions"))
                conn.commit()
        ids = bank.ids(pid, changes)
        for i, tid in enumerate(ids[: changes // 2]):
            bank.mutate(pid, "modify", transaction_id=tid, name=f"CHANGED {i}")
        for tid in ids[changes // 2 : changes // 2 + changes // 5]:
            bank.mutate(pid, "remove", transaction_id=tid)
        for i in range(changes - changes // 2 - changes // 5):
            bank.mutate(pid, "add", cents=1000 + i, name=f"NEW {i}")
        before = rss_mib()
        t0 = time.perf_counter()
        r = sync_item(c, user_id, item_id, gateway=gw)
        took = time.perf_counter() - t0
        with unit_of_work(c.engine) as s:
            total = s.execute(text("SELECT count(*) FROM transactions")).scalar()
        print(
            f"[{kind}] incremental sync of {r.added + r.modified + r.removed} changes on {total:,} txns: {took:.3f} s; "
            f"peak RSS growth {peak_mib() - before:.0f} MiB"
        )
        bank.stop()
        c.engine.dispose()
        drop(handle)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["initial", "incremental"])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--transactions", type=int, default=200_000)
    p.add_argument("--history", type=int, default=1_000_000)
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--bank", choices=["process", "thread"], default="process")
    a = p.parse_args()
    print(f"demo bank: {'own process' if a.bank == 'process' else 'in this process (thread)'}")
    if a.mode == "initial":
        initial(a.db, a.transactions, a.bank)
    else:
        incremental(a.db, a.history, a.changes, a.bank)


if __name__ == "__main__":
    main()
