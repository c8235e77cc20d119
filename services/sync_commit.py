"""Apply a fetched run: rows, balances, checks, cursor, state and run record in ONE transaction."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from models import ItemSyncState, LedgerTransaction, PlaidItem, SyncQuarantine, SyncRun
from services.banking_views import healthy
from services.container import Container
from services.db import unit_of_work
from services.notify import NewTransaction, NotificationSettings, is_large, queue_after_sync, read_prefs
from services.plaid_mapping import UnreadableRecord
from services.plaid_types import Account
from services.relink import reconcile_kept
from services.sync_accounts import placeholder_account, upsert_accounts
from services.sync_apply import REMOVED, Plan, Staged, plan_chunk, referenced_ids
from services.sync_bulk import NEWS_FIRST, NEWS_MAX, all_added, insert_new, new_rows, news_count, staged_accounts
from services.sync_checks import LowBalance, check_accounts, older_history
from services.sync_run import LeaseLost, RunCounters
from services.sync_store import (
    Sql,
    drop_staging,
    forget_unedited_tombstones,
    load_existing,
    load_tombstones,
    staged_chunks,
    write_plan,
)
from services.sync_types import SyncResult


@dataclass
class News:
    """What a sync brought in: its notifications are queued in the apply transaction and sent once it commits."""

    rows: list[NewTransaction] = field(default_factory=list)
    count: int = 0
    low: list[LowBalance] = field(default_factory=list)
    initial: bool = False  # the connection's first successful sync: its rows are past history, not news
    mail: list[uuid.UUID] = field(default_factory=list)  # the notifications queued in the apply transaction
    # Rows dated before this day are the bank's history arriving, not news: Plaid sends a new connection's last
    # 30 days first and the older history in later syncs, as `added` like any other transaction. The day is the
    # bank's own (its oldest transaction here), so no clock of ours decides what is old, unless the bank has sent
    # none yet: then it is the day the connection was linked.
    history_before: date = date.min
    _newest: list[tuple[date, int, NewTransaction]] = field(default_factory=list, repr=False)  # a heap
    _large: list[NewTransaction] = field(default_factory=list, repr=False)

    def forget(self, rows: dict[str, date]) -> None:
        """Drop rows that turned out to continue kept history (a bank linked again) rather than be new."""
        self.count -= sum(day >= self.history_before for day in rows.values())
        self.rows = [r for r in self.rows if r.transaction_id not in rows]

    def collect(self, plan: Plan, large: int | None) -> None:
        """The rows a chunk brought in that are new to the user (a pending row posting is not news again): the 20
        newest (by date, then arrival, whatever order the bank sends them in) and the large ones, up to 200."""
        for tid, values in plan.new.items():
            day = date.fromisoformat(values[4])
            if day < self.history_before:
                continue
            self.count += 1
            amount, currency = values[1], values[2] or values[3]  # ISO, else Plaid's unofficial code
            row = NewTransaction(day, values[6], amount, currency, tid)
            push = heapq.heappush if len(self._newest) < NEWS_FIRST else heapq.heappushpop
            push(self._newest, (day, self.count, row))  # count: arrival order, and no tie ever compares rows
            if is_large(amount, currency, large) and len(self._large) < NEWS_MAX:
                self._large.append(row)
        self._grown(plan, large)
        newest = [row for *_, row in sorted(self._newest, key=lambda e: e[:2], reverse=True)]
        listed = {r.transaction_id for r in newest}
        self.rows = newest + [r for r in self._large if r.transaction_id not in listed][: NEWS_MAX - NEWS_FIRST]

    def _grown(self, plan: Plan, large: int | None) -> None:
        """A pending charge that posts at or above the threshold, having been below it (a tip, a fuel or hotel hold):
        not news again, but large for the first time, so it is alerted once, as its pending twin was not."""
        for tid, before in plan.posted.items():
            values = plan.upserts[tid][0]
            day, amount, currency = date.fromisoformat(values[4]), values[1], values[2] or values[3]
            was_large = is_large(before[1], before[2] or before[3], large)
            fresh = day >= self.history_before and len(self._large) < NEWS_MAX
            if fresh and is_large(amount, currency, large) and not was_large:
                self._large.append(NewTransaction(day, values[6], amount, currency, tid, news=False))


def apply_run(
    c: Container,
    item: PlaidItem,
    run: RunCounters,
    start: str,
    cursor: str,
    accounts: tuple[Account, ...],
    began: datetime,
    news: News,
) -> SyncResult:
    """Rows, balances, checks, cursor, state and run record: one transaction; ``news`` collects what it brought in
    and queues what the user's preferences, as they are when it commits, ask to be told."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        claim = update(ItemSyncState).where(
            col(ItemSyncState.item_id) == item.id,
            col(ItemSyncState.lease_owner) == run.owner,
            col(ItemSyncState.cursor) == start,
        )
        if session.execute(claim.values(cursor=cursor)).rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost("the cursor moved or the lease expired")
        prefs = read_prefs(session, item.user_id, lock=True)  # not as they were before a fetch of minutes
        amap = upsert_accounts(session, item, accounts, now)
        sql = Sql(session.connection())
        oldest = _oldest_day(session, item)  # before this run's rows: older ones arriving now are history
        news.history_before = oldest or item.created_at.date() - timedelta(days=1)
        older = older_history(session, item, amap.values(), oldest, run.run_id)
        added, modified, removed = _apply_rows(session, sql, item, run, amap, now, news, prefs)
        forget_unedited_tombstones(sql, item.user_id, now)  # holds whose posted twin never came
        continued = reconcile_kept(session, item, run.run_id, now)  # a relinked bank's history is not news
        if continued:
            added -= len(continued)
            news.forget(continued)
        set_aside(session, sql, item, run, now)
        drop_staging(sql, [run.run_id])
        news.low = check_accounts(session, item, accounts, amap, now, prefs.low_balance_minor, older)
        state = session.get(ItemSyncState, item.id)
        news.initial = state is None or state.last_success_at is None
        _finish(c, session, item, run, now, began, (added, modified, removed))
        # Queued in this transaction: the user hears of exactly what was committed, even if the process dies next.
        told = (news.rows, news.count, news.low)
        news.mail = queue_after_sync(
            session, c, item.user_id, item.institution_name, told, prefs, initial=news.initial, item_id=item.id
        )
    code, message = _aside_note(run)
    result = SyncResult(item.id, "ok", item.institution_name, run.pages, added, modified, removed, code, message,
                        run.run_id)  # fmt: skip
    return result


def _aside_note(run: RunCounters) -> tuple[str | None, str]:
    if not run.unreadable:
        return None, ""
    return "TRANSACTIONS_SET_ASIDE", f"{len(run.unreadable)} transaction(s) could not be read and were set aside."


def set_aside(session: Session, sql: Sql, item: PlaidItem, run: RunCounters, now: datetime) -> None:
    """Keep this run's unreadable transactions; forget set-aside ones the run brought readable (or removed)."""
    sql.run(
        "DELETE FROM sync_quarantine WHERE item_id = ? AND plaid_transaction_id IN "
        "(SELECT plaid_transaction_id FROM sync_staging WHERE run_id = ?)",
        (sql.uid(item.id), sql.uid(run.run_id)),
    )
    for u in run.unreadable:
        tid = u.transaction_id or f"unnamed:{hashlib.sha256(u.excerpt.encode()).hexdigest()[:32]}"
        row = session.execute(
            select(SyncQuarantine).where(
                col(SyncQuarantine.item_id) == item.id, col(SyncQuarantine.plaid_transaction_id) == tid
            )
        ).scalar_one_or_none()
        if row is None:
            row = SyncQuarantine(item_id=item.id, user_id=item.user_id, plaid_transaction_id=tid, first_seen_at=now,
                                 kind=u.kind, reason=u.reason, excerpt=u.excerpt)  # fmt: skip
        row.kind, row.reason, row.excerpt, row.run_id, row.last_seen_at = u.kind, u.reason, u.excerpt, run.run_id, now
        row.pending_transaction_id = u.pending_transaction_id if isinstance(u, UnreadableRecord) else None
        session.add(row)


def _oldest_day(session: Session, item: PlaidItem) -> date | None:
    """The day of the connection's oldest transaction in the ledger (None before it has any). Before it has any, news
    counts from the day before it was linked (a day's slack for time zones): an account with nothing in Plaid's first
    30 days still gets its older history later, and that is no more news than any other history."""
    return session.execute(
        select(func.min(LedgerTransaction.date)).where(
            col(LedgerTransaction.user_id) == item.user_id, col(LedgerTransaction.item_id) == item.id
        )
    ).scalar()


def _apply_rows(
    session: Session,
    sql: Sql,
    item: PlaidItem,
    run: RunCounters,
    amap: dict[str, uuid.UUID],
    now: datetime,
    news: News,
    prefs: NotificationSettings,
) -> tuple[int, int, int]:
    """Insert an all-new run set-based, or plan and write it chunk by chunk (memory does not grow with its size)."""
    if all_added(sql, run.run_id):
        for plaid_account_id in staged_accounts(sql, run.run_id):
            if plaid_account_id not in amap:
                amap[plaid_account_id] = placeholder_account(session, item, plaid_account_id)
        keys = {"user_id": item.user_id, "item_id": item.id, "run_id": run.run_id}
        inserted = insert_new(sql, **keys, now=now, report=lambda n: run.report("applying", n))
        if inserted is not None:
            news.count += news_count(sql, run.run_id, news.history_before)
            news.rows = new_rows(sql, run.run_id, prefs.large_transaction_minor, news.history_before)
            return inserted, 0, 0
    added = modified = removed = 0
    # A posted transaction set aside as unreadable: its pending twin stays (edits and all) until it reads.
    held = {
        u.pending_transaction_id for u in run.unreadable if isinstance(u, UnreadableRecord) and u.pending_transaction_id
    }
    # One the bank has removed since: its pending twin goes too (the bank has neither now).
    released = [Staged(0, REMOVED, tid) for tid in released_twins(sql, item.id, run.run_id) if tid not in held]
    for chunk in itertools.chain(staged_chunks(sql, run.run_id), [released] if released else []):
        for s in chunk:
            if s.values and s.values[0] not in amap:
                amap[s.values[0]] = placeholder_account(session, item, s.values[0])
        ids = sorted(referenced_ids(chunk))
        existing = load_existing(sql, item.user_id, ids)
        plan = plan_chunk(chunk, existing, load_tombstones(sql, item.user_id, ids), held)
        news.collect(plan, prefs.large_transaction_minor)
        write_plan(sql, plan, user_id=item.user_id, item_id=item.id, run_id=run.run_id, accounts=amap, now=now)
        added, modified, removed = added + plan.added, modified + plan.modified, removed + plan.removed
        run.report("applying", added + modified + removed)
    return added, modified, removed


def released_twins(sql: Sql, item_id: uuid.UUID, run_id: uuid.UUID) -> list[str]:
    """Pending ids kept for set-aside posted transactions that this run's staged changes remove (unless the run
    sends that pending transaction itself again: then the bank still has it)."""
    run = sql.uid(run_id)
    rows = sql.run(
        "SELECT DISTINCT q.pending_transaction_id FROM sync_quarantine q JOIN sync_staging s "
        "ON s.plaid_transaction_id = q.plaid_transaction_id AND s.run_id = ? AND s.kind = ? "
        "WHERE q.item_id = ? AND q.pending_transaction_id IS NOT NULL AND q.pending_transaction_id NOT IN "
        "(SELECT plaid_transaction_id FROM sync_staging WHERE run_id = ? AND kind <> ?)",
        (run, REMOVED, sql.uid(item_id), run, REMOVED),
    ).fetchall()
    return sorted(r[0] for r in rows)


def _finish(
    c: Container,
    session: Session,
    item: PlaidItem,
    run: RunCounters,
    now: datetime,
    began: datetime,
    counts: tuple[int, int, int],
) -> None:
    """Mark the item synced and the run done, inside the apply transaction."""
    state = session.get(ItemSyncState, item.id)
    assert state is not None
    state.state, (state.error_code, state.message) = "ok", _still_aside(session, item)
    state.last_success_at, state.last_success_started_at, state.last_attempt_at = now, began, now
    state.next_due_at = now + timedelta(hours=c.settings.sync_interval_hours)
    state.consecutive_failures, state.login_required_since = 0, None
    state.lease_owner, state.lease_expires_at = None, None
    session.add(state)
    row = session.get(SyncRun, run.run_id)
    assert row is not None
    row.status, row.finished_at, row.pages, row.restarts, row.retries = (
        "ok",
        now,
        run.pages,
        run.restarts,
        run.retries,
    )
    row.added, row.modified, row.removed = counts
    row.error_code, row.message = _aside_note(run)
    row.request_ids = ",".join(run.request_ids)
    session.add(row)
    # Locked (PostgreSQL): a webhook that changes the status while this transaction is open waits for it and then
    # applies its news on top, instead of this commit writing back the status it read before the webhook's.
    fresh = session.get(PlaidItem, item.id, with_for_update=True, populate_existing=True)
    # A sync that worked disproves only "sign in again" and "error"; a webhook's advisory (consent expiring,
    # new accounts, access revoked) still holds and stays until the user repairs the connection.
    # A status decided after this run began (a webhook signed meanwhile) is newer news than this run: keep it.
    if fresh is not None and fresh.status in _DISPROVED and (fresh.status_since or began) <= began:
        fresh.status, fresh.status_code = healthy(fresh.new_accounts_since)  # new accounts still wait for their picker
        fresh.updated_at, fresh.status_since = now, began
        session.add(fresh)


_DISPROVED = frozenset({"login_required", "error"})


def _still_aside(session: Session, item: PlaidItem) -> tuple[str | None, str]:
    """The connection's note while transactions stay set aside (this run's or an earlier one's)."""
    n = session.execute(
        select(func.count()).select_from(SyncQuarantine).where(col(SyncQuarantine.item_id) == item.id)
    ).scalar_one()
    if not n:
        return None, ""
    return "TRANSACTIONS_SET_ASIDE", f"{n} transaction(s) from your bank could not be read and are set aside."
