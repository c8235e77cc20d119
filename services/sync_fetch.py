"""Fetch every /transactions/sync page of a run into staging, restarting on mutation during pagination.

Plaid's rule (PLAID_NOTES §3): keep the cursor the loop began with; on
TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION discard what was fetched and restart from it.

The next page is requested while the current one is staged (a thread a page or two ahead: the wait
on the network overlaps our own work), and pages are staged a few thousand rows per transaction.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from services.container import Container
from services.db import unit_of_work
from services.plaid_client import PlaidGateway
from services.plaid_errors import MutationDuringPagination, Transient
from services.plaid_events import EventBatch, batched_calls
from services.plaid_types import SyncPage
from services.sync_apply import ADDED, MODIFIED, REMOVED, staged_values
from services.sync_aside import readable_again
from services.sync_run import LeaseLost, Pacer, RunCounters, TooManyPages, retrying
from services.sync_state import renew
from services.sync_store import Sql, drop_staging, stage
from services.sync_types import LEASE_SECONDS, MAX_PAGES, MAX_RESTARTS, MAX_UNREADABLE, RetryPolicy

PAGE_SIZE = 500
STAGE_ROWS = 5000  # staged changes per transaction (ten full pages)
AHEAD = 2  # pages fetched but not yet staged, at most
RENEW_SECONDS = LEASE_SECONDS / 3  # a slow bank: what is buffered is staged (and the lease renewed) at least this often


def fetch(c: Container, gw: PlaidGateway, token: str, run: RunCounters, start: str, policy: RetryPolicy) -> str | None:
    """Stage every page from ``start``; return the final cursor, or None while the item is not ready."""
    with batched_calls(c.engine) as events:
        while True:
            run.unreadable.clear()  # what an abandoned attempt set aside is fetched again
            try:
                return _fetch_once(c, gw, token, run, start, policy, events)
            except MutationDuringPagination:
                run.restarts += 1
                with unit_of_work(c.engine, immediate=True) as session:  # renewed: the attempt counts from now
                    if not renew(session, run.item_id, run.owner, c.clock()):
                        raise LeaseLost("lost the item's lease") from None
                    drop_staging(Sql(session.connection()), [run.run_id])
                if run.restarts >= MAX_RESTARTS:
                    raise


def _fetch_once(
    c: Container, gw: PlaidGateway, token: str, run: RunCounters, start: str, policy: RetryPolicy, events: EventBatch
) -> str | None:
    seq, pages = 0, 0
    with unit_of_work(c.engine) as session:  # staged first, so what Plaid sends in this run wins over it
        buffered: list[tuple[int, str, tuple[Any, ...]]] = readable_again(Sql(session.connection()), run.item_id)

    pacer = Pacer(policy)
    renewed = c.clock()

    def get(at: str) -> SyncPage:
        pacer.wait()
        return retrying(lambda: gw.transactions_sync(token, at, PAGE_SIZE), policy, run)

    pager = Prefetcher(get, start)
    try:
        for page in pager:
            pages += 1
            run.pages += 1
            if page.next_cursor == "":
                return None  # NOT_READY: empty arrays and an empty cursor; not an error
            buffered += [(ADDED, t.transaction_id, staged_values(t)) for t in page.added]
            buffered += [(MODIFIED, t.transaction_id, staged_values(t)) for t in page.modified]
            buffered += [(REMOVED, tid, ()) for tid in page.removed]
            run.fetched += len(page.added) + len(page.modified) + len(page.removed)
            run.unreadable += page.unreadable
            if len(run.unreadable) > MAX_UNREADABLE:
                raise Transient("MALFORMED_RESPONSE", display_message="Plaid sent many transactions we could not read.")
            slow = (c.clock() - renewed).total_seconds() >= RENEW_SECONDS
            if len(buffered) >= STAGE_ROWS or not page.has_more or slow:
                renewed = c.clock()
                with unit_of_work(c.engine, immediate=True) as session:
                    if not renew(session, run.item_id, run.owner, renewed):
                        raise LeaseLost("lost the item's lease")
                    seq = stage(Sql(session.connection()), run.run_id, seq, buffered)
                    events.drain_into(session)
                buffered = []
            run.report("fetching")
            if not page.has_more:
                return page.next_cursor
            if pages >= MAX_PAGES:
                raise TooManyPages(f"more than {MAX_PAGES} pages")
    finally:
        pager.close()
    raise AssertionError("the pager ended before the last page")  # pragma: no cover - Prefetcher yields until it


class Prefetcher:
    """Pages of one pagination loop, each requested (in a thread) while the caller works on the one before.

    The thread runs in a copy of the caller's context, so the Plaid call log keeps its user and item.
    It stops after the last page, a not-ready page, MAX_PAGES pages, an error (handed to the caller,
    which raises it) or ``close()``.
    """

    def __init__(self, get: Callable[[str], SyncPage], start: str, ahead: int = AHEAD) -> None:
        self._pages: queue.Queue[SyncPage | BaseException] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, get, start), name="finsync-sync-fetch", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Iterator[SyncPage]:
        while True:
            item = self._pages.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.next_cursor == "" or not item.has_more:
                return

    def close(self) -> None:
        """Stop fetching; a request in flight finishes in the background and is dropped."""
        self._stop.set()

    def _run(self, get: Callable[[str], SyncPage], cursor: str) -> None:
        for _ in range(MAX_PAGES):
            if self._stop.is_set():
                return
            try:
                page = get(cursor)
            except BaseException as exc:  # handed to the caller's thread, which raises it
                self._put(exc)
                return
            self._put(page)
            if page.next_cursor == "" or not page.has_more:
                return
            cursor = page.next_cursor

    def _put(self, item: SyncPage | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
