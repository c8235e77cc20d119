"""The Transactions page's reads on a long ledger: a page of 500 at the start, the middle and the end, and a search,
each against a raw driver query for the same rows (the baseline, same run).

Usage: .venv/bin/python bench/bench_ledger.py --db sqlite|postgresql [--history N]
PostgreSQL reads BENCH_POSTGRES_URL (a fresh database is made per run). The ledger is filled by a first sync from
the demo bank (its page bound lifted, as in bench_sync.py incremental).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench.bench_sync import drop, setup
from services import ledger_listing, plaid_mapping, sync_fetch
from services.sync_engine import sync_item

PAGE = ledger_listing.PAGE_SIZE


def median_s(fn: Callable[[], object], runs: int = 5) -> float:
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        took.append(time.perf_counter() - t0)
    return statistics.median(took)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--history", type=int, default=1_000_000)
    args = p.parse_args()
    kind = args.db
    with tempfile.TemporaryDirectory() as d:
        c, bank, gw, uid, item_id, _pid, handle = setup(kind, Path(d), args.history, "process")
        bound, sync_fetch.MAX_PAGES = sync_fetch.MAX_PAGES, 10**6
        try:
            assert sync_item(c, uid, item_id, gateway=gw).status == "ok"
        finally:
            sync_fetch.MAX_PAGES = bound
        bank.stop()
        order = '"date" DESC, plaid_transaction_id'
        if kind == "postgresql":  # planner statistics after the bulk load, as autovacuum would gather them
            with c.engine.connect() as conn:
                conn.execute(text("ANALYZE transactions"))
                conn.commit()
        with c.engine.connect() as conn:
            total = conn.execute(text("SELECT count(*) FROM transactions")).scalar_one()

            def at(n: int) -> tuple[object, str]:  # the (date, id) of the n-th row (0-based) in the page order
                row = conn.execute(text(f"SELECT date, plaid_transaction_id FROM transactions ORDER BY {order} "
                                        f"LIMIT 1 OFFSET {n}")).one()  # fmt: skip
                return plaid_mapping.as_date(row[0]), row[1]

            spots = {"first page": None, "middle page": at(total // 2), "last page": at(total - PAGE)}
            raw_sql = text(f"SELECT * FROM transactions WHERE user_id = :u ORDER BY {order} LIMIT {PAGE + 1}")
            uid_param = uid.hex if kind == "sqlite" else uid
            assert len(conn.execute(raw_sql, {"u": uid_param}).fetchall()) == PAGE + 1  # the same rows, not none
            raw = median_s(lambda: conn.execute(raw_sql, {"u": uid_param}).fetchall())
            count_sql = text("SELECT count(*) FROM transactions WHERE user_id = :u")
            counted = median_s(lambda: conn.execute(count_sql, {"u": uid_param}).scalar_one())
        print(f"[{kind}] ledger of {total:,} transactions; raw first page (driver, {PAGE + 1} rows): {raw * 1000:.1f} ms;"
              f" raw count of the user's rows (a page's true total takes one): {counted * 1000:.1f} ms")  # fmt: skip
        for name, start in spots.items():
            page = ledger_listing.list_transactions(c, uid, start=start)  # type: ignore[arg-type]
            took = median_s(lambda start=start: ledger_listing.list_transactions(c, uid, start=start))  # type: ignore[misc]
            print(f"[{kind}] {name:<11}: rows {page.position:,}-{page.position + len(page) - 1:,} of {page.total:,} "
                  f"in {took * 1000:.1f} ms = {took / raw:.1f}x the raw first page")  # fmt: skip
        columns = ("name", "merchant_name", "category_override", "category_detailed", "note", "tags")
        plain_sql = text("SELECT count(*) FROM transactions WHERE user_id = :u AND ("
                         + " OR ".join(f"lower({n}) LIKE :p" for n in columns) + ")")  # fmt: skip
        with c.engine.connect() as conn:
            plain = median_s(lambda: conn.execute(plain_sql, {"u": uid_param, "p": "%netflix%"}).scalar_one(), runs=3)
        print(f"[{kind}] baseline: raw count of lower(column) LIKE '%netflix%' over the six columns, case of ASCII "
              f"only, accents not ignored: {plain * 1000:.0f} ms")  # fmt: skip
        for word, what in (("netflix", "ASCII"), ("cafe", "ASCII, finds café"), ("café", "not ASCII")):
            took = median_s(lambda word=word: ledger_listing.list_transactions(c, uid, search=word), runs=3)  # type: ignore[misc]
            print(f"[{kind}] search '{word}' ({what}; case and accents aside): {took * 1000:.0f} ms = "
                  f"{took / plain:.1f}x the baseline")  # fmt: skip
        c.engine.dispose()
        drop(handle)


if __name__ == "__main__":
    main()
