"""Fetch every /transactions/sync page of a run into staging, restarting on mutation during pagination.

Plaid's rule (PLAID_NOTES §3): keep the cursor the loop began with; on
TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION discard what was fetched and restart from it.
"""

from __future__ import annotations

from services.container import Container
from services.db import unit_of_work
from services.plaid_client import PlaidGateway
from services.plaid_types import MutationDuringPagination
from services.sync_apply import ADDED, MODIFIED, REMOVED, staged_values
from services.sync_run import LeaseLost, RunCounters, TooManyPages, retrying
from services.sync_state import renew
from services.sync_store import Sql, drop_staging, stage
from services.sync_types import MAX_PAGES, MAX_RESTARTS, RetryPolicy

PAGE_SIZE = 500


def fetch(c: Container, gw: PlaidGateway, token: str, run: RunCounters, start: str, policy: RetryPolicy) -> str | None:
    """Stage every page from ``start``; return the final cursor, or None while the item is not ready."""
    while True:
        try:
            return _fetch_once(c, gw, token, run, start, policy)
        except MutationDuringPagination:
            run.restarts += 1
            with unit_of_work(c.engine, immediate=True) as session:
                drop_staging(Sql(session.connection()), [run.run_id])
            if run.restarts > MAX_RESTARTS:
                raise


def _fetch_once(
    c: Container, gw: PlaidGateway, token: str, run: RunCounters, start: str, policy: RetryPolicy
) -> str | None:
    cursor, seq, pages = start, 0, 0
    while True:
        page = retrying(lambda at=cursor: gw.transactions_sync(token, at, PAGE_SIZE), policy, run)  # type: ignore[misc]
        pages += 1
        run.pages += 1
        if page.next_cursor == "":
            return None  # NOT_READY: empty arrays and an empty cursor; not an error
        changes = [(ADDED, t.transaction_id, staged_values(t)) for t in page.added]
        changes += [(MODIFIED, t.transaction_id, staged_values(t)) for t in page.modified]
        changes += [(REMOVED, tid, ()) for tid in page.removed]
        with unit_of_work(c.engine, immediate=True) as session:
            if not renew(session, run.item_id, run.owner, c.clock()):
                raise LeaseLost("lost the item's lease")
            seq = stage(Sql(session.connection()), run.run_id, seq, changes)
        run.fetched += len(changes)
        run.report("fetching")
        cursor = page.next_cursor
        if not page.has_more:
            return cursor
        if pages >= MAX_PAGES:
            raise TooManyPages(f"more than {MAX_PAGES} pages")
