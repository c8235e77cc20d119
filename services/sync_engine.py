"""One item's sync: fetch every page into staging, then apply rows, balances and cursor in ONE transaction.

Plaid's rule (PLAID_NOTES §3): keep the cursor the loop began with; on
TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION discard what was fetched and restart from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from models import BankAccount, ItemSyncState, PlaidApiEvent, PlaidItem, SyncRun
from services.container import Container
from services.db import unit_of_work
from services.errors import FinsyncError, NotFound
from services.notify import (
    NewTransaction,
    NotificationSettings,
    after_sync,
    connection_needs_attention,
    get_notification_prefs,
)
from services.plaid_client import (
    Account,
    CallEvent,
    LoginRequired,
    MutationDuringPagination,
    PlaidError,
    PlaidGateway,
    RateLimited,
    Transient,
)
from services.sync_apply import ADDED, MODIFIED, REMOVED, Staged, plan_chunk, referenced_ids, staged_values
from services.sync_checks import LowBalance, check_accounts
from services.sync_state import acquire, finish_unsuccessful, release, renew, start_run, worker_name
from services.sync_store import Sql, drop_staging, load_existing, load_tombstones, stage, staged_chunks, write_plan
from services.sync_types import (
    LOGIN_PROBE_HOURS,
    MAX_PAGES,
    MAX_RESTARTS,
    PREPARING_RETRY_MINUTES,
    RetryPolicy,
    SyncProgress,
    SyncResult,
    explained,
)

log = logging.getLogger("finsync.sync")
T = TypeVar("T")
Progress = Callable[[SyncProgress], None]


class LeaseLost(FinsyncError):
    """Another process took over the item (our lease expired) or moved its cursor."""


class TooManyPages(FinsyncError):
    """The run paged beyond MAX_PAGES."""


@dataclass
class _Run:
    """Counters of one run."""

    run_id: uuid.UUID
    item_id: uuid.UUID
    owner: str
    progress: Progress | None
    pages: int = 0
    restarts: int = 0
    retries: int = 0
    fetched: int = 0
    events: list[CallEvent] = field(default_factory=list)

    @property
    def request_ids(self) -> list[str]:
        return [e.request_id for e in self.events if e.request_id]

    def report(self, stage: Any, applied: int = 0) -> None:
        if self.progress is None:
            return
        try:
            self.progress(SyncProgress(self.item_id, stage, self.pages, self.fetched, applied))
        except Exception:  # a broken progress bar must not break the sync
            log.exception("sync progress callback failed")


def gateway_for(c: Container) -> PlaidGateway | None:
    """The container's gateway (None when Plaid is not set up)."""
    return c.plaid


def access_token(c: Container, user_id: uuid.UUID, item: PlaidItem) -> str:
    """Decrypt the item's access token (bound to its row; a bad ciphertext marks the item)."""
    from services.banking import get_access_token

    return get_access_token(c, user_id, item.id)


def _retrying(call: Callable[[], T], policy: RetryPolicy, run: _Run) -> T:
    """Absorb 429s and transient failures with jittered backoff, within the policy's budget."""
    attempt = 0
    while True:
        try:
            return call()
        except (RateLimited, Transient):
            if attempt >= policy.retries:
                raise
            policy.pause(attempt)
            attempt += 1
            run.retries += 1


def sync_item(
    c: Container,
    user_id: uuid.UUID,
    item_id: uuid.UUID,
    *,
    explicit: bool = True,
    progress: Progress | None = None,
    trigger: str | None = None,
    gateway: PlaidGateway | None = None,
    policy: RetryPolicy | None = None,
    worker: str | None = None,
    if_due: bool = False,
) -> SyncResult:
    """Sync one item; ``explicit`` (CLI, "Sync now") tries even an item waiting for the user to sign in."""
    now = c.clock()
    with unit_of_work(c.engine) as session:
        item = session.get(PlaidItem, item_id)
        if item is None or item.user_id != user_id:
            raise NotFound("No such bank connection.")
        name = item.institution_name
        state = session.get(ItemSyncState, item_id)
        if not explicit and state is not None and state.state == "login_required":
            last = state.last_attempt_at
            if last is not None and now - last < timedelta(hours=LOGIN_PROBE_HOURS):
                return SyncResult(item_id, "login_required", name, error_code=state.error_code, message=state.message)
    gw = gateway or gateway_for(c)
    if gw is None:
        return SyncResult(item_id, "failed", name, error_code="NOT_CONFIGURED", message=explained("NOT_CONFIGURED"))
    owner = worker or worker_name()
    with unit_of_work(c.engine, immediate=True) as session:
        item = session.get(PlaidItem, item_id)
        if item is None:
            raise NotFound("No such bank connection.")
        if not acquire(session, item, owner, now):
            msg = "This connection is already syncing; the result appears here when it finishes."
            return SyncResult(item_id, "already_syncing", name, message=msg)
        state = session.get(ItemSyncState, item_id)
        assert state is not None
        if if_due and state.next_due_at is not None and state.next_due_at > now:
            state.lease_owner, state.lease_expires_at = None, None  # a racing worker already did it
            session.add(state)
            return SyncResult(item_id, "ok", name, message="Already up to date.")
        run_row = start_run(session, item, owner, trigger or ("manual" if explicit else "schedule"), now)
        start_cursor = state.cursor
    run = _Run(run_row.id, item_id, owner, progress)
    original = gw.recorder

    def record(event: CallEvent) -> None:
        run.events.append(event)
        if original is not None:
            original(event)

    gw = gw.with_recorder(record)
    try:
        return _execute(c, gw, item, run, start_cursor, policy or RetryPolicy(), now)
    except BaseException:
        release(c.engine, item_id, owner)  # a crash of ours (not a kill) frees the item at once
        raise
    finally:
        _record_calls(c, user_id, item_id, run.events)


def _execute(  # noqa: PLR0911 - one return per way a run can end
    c: Container, gw: PlaidGateway, item: PlaidItem, run: _Run, start: str, policy: RetryPolicy, now: datetime
) -> SyncResult:
    token = access_token(c, item.user_id, item)
    counts = (0, 0, 0)

    def fail(status: Any, code: str | None, message: str, due: datetime | None) -> SyncResult:
        newly = finish_unsuccessful(
            c.engine,
            item_id=item.id,
            run_id=run.run_id,
            owner=run.owner,
            now=c.clock(),
            status=status,
            error_code=code,
            message=message,
            next_due_at=due,
            counts=(run.pages, run.restarts, run.retries),
            request_ids=run.request_ids,
        )
        if newly:
            connection_needs_attention(c, item.user_id, item.institution_name)
        return SyncResult(item.id, status, item.institution_name, run.pages, *counts, code, message, run.run_id)

    interval = timedelta(hours=c.settings.sync_interval_hours)
    try:
        cursor = _fetch(c, gw, token, run, start, policy)
        if cursor is None:
            due = now + timedelta(minutes=PREPARING_RETRY_MINUTES)
            return fail("preparing", None, explained("PREPARING"), due)
        accounts = _retrying(lambda: gw.accounts_get(token), policy, run).accounts
        run.report("applying")
        prefs = get_notification_prefs(c, item.user_id)
        result, news = _apply(c, item, run, start, cursor, accounts, now, prefs)
    except LoginRequired as exc:
        return fail("login_required", exc.code, explained(exc.code), now + timedelta(hours=LOGIN_PROBE_HOURS))
    except MutationDuringPagination as exc:
        return fail("failed", exc.code, explained(exc.code), now + timedelta(minutes=5))
    except PlaidError as exc:
        return fail("failed", exc.code, explained(exc.code, exc.error_type), now + min(interval, timedelta(hours=1)))
    except TooManyPages:
        return fail("failed", "TOO_MANY_PAGES", explained("TOO_MANY_PAGES"), now + interval)
    except LeaseLost:
        msg = "Another sync of this connection took over; its result will appear here."
        return SyncResult(item.id, "already_syncing", item.institution_name, run.pages, message=msg)
    except SQLAlchemyError:
        log.exception("sync of item %s could not be saved", item.id)
        return fail("failed", "DATABASE_ERROR", explained("DATABASE_ERROR"), now + interval)
    run.report("done", result.added + result.modified + result.removed)
    after_sync(c, item.user_id, item.institution_name, news.rows, news.count, news.low)
    return result


def _fetch(c: Container, gw: PlaidGateway, token: str, run: _Run, start: str, policy: RetryPolicy) -> str | None:
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


def _fetch_once(c: Container, gw: PlaidGateway, token: str, run: _Run, start: str, policy: RetryPolicy) -> str | None:
    cursor, seq, pages = start, 0, 0
    while True:
        page = _retrying(lambda at=cursor: gw.transactions_sync(token, at, 500), policy, run)  # type: ignore[misc]
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


@dataclass
class _News:
    """What a sync brought in, for the notifications sent after it commits."""

    rows: list[NewTransaction] = field(default_factory=list)
    count: int = 0
    low: list[LowBalance] = field(default_factory=list)

    def collect(self, chunk: list[Staged], existing: set[str], large: int | None) -> None:
        for s in chunk:
            if s.kind != ADDED or s.transaction_id in existing:
                continue
            self.count += 1
            amount = s.values[1]
            if len(self.rows) < 20 or (large is not None and abs(amount) >= large and len(self.rows) < 200):
                self.rows.append(NewTransaction(date.fromisoformat(s.values[4]), s.values[6], amount, s.values[2]))


def _apply(
    c: Container,
    item: PlaidItem,
    run: _Run,
    start: str,
    cursor: str,
    accounts: tuple[Account, ...],
    began: datetime,
    prefs: NotificationSettings,
) -> tuple[SyncResult, _News]:
    """Rows, balances, checks, cursor, state and run record: one transaction."""
    now = c.clock()
    news = _News()
    added = modified = removed = 0
    with unit_of_work(c.engine, immediate=True) as session:
        claim = update(ItemSyncState).where(
            col(ItemSyncState.item_id) == item.id,
            col(ItemSyncState.lease_owner) == run.owner,
            col(ItemSyncState.cursor) == start,
        )
        if session.execute(claim.values(cursor=cursor)).rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost("the cursor moved or the lease expired")
        amap = _upsert_accounts(session, item, accounts, now)
        sql = Sql(session.connection())
        for chunk in staged_chunks(sql, run.run_id):
            for s in chunk:
                if s.values and s.values[0] not in amap:
                    amap[s.values[0]] = _placeholder_account(session, item, s.values[0])
            ids = sorted(referenced_ids(chunk))
            existing = load_existing(sql, item.user_id, ids)
            news.collect(chunk, set(existing), prefs.large_transaction_minor)
            plan = plan_chunk(chunk, existing, load_tombstones(sql, item.user_id, ids))
            write_plan(sql, plan, user_id=item.user_id, item_id=item.id, run_id=run.run_id, accounts=amap, now=now)
            added, modified, removed = added + plan.added, modified + plan.modified, removed + plan.removed
            run.report("applying", added + modified + removed)
        drop_staging(sql, [run.run_id])
        news.low = check_accounts(session, item, accounts, amap, now, prefs.low_balance_minor)
        state = session.get(ItemSyncState, item.id)
        assert state is not None
        state.state, state.error_code, state.message = "ok", None, ""
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
        row.added, row.modified, row.removed = added, modified, removed
        row.request_ids = ",".join(run.request_ids)
        session.add(row)
        fresh = session.get(PlaidItem, item.id)
        if fresh is not None and fresh.status != "ok":
            fresh.status, fresh.status_code, fresh.updated_at = "ok", None, now
            session.add(fresh)
    result = SyncResult(item.id, "ok", item.institution_name, run.pages, added, modified, removed, None, "", run.run_id)
    return result, news


def _upsert_accounts(
    session: Any, item: PlaidItem, accounts: tuple[Account, ...], now: datetime
) -> dict[str, uuid.UUID]:
    """Create or refresh the item's accounts and their balances; map Plaid account id -> our id."""
    ids = [a.account_id for a in accounts]
    rows = session.exec(select(BankAccount).where(col(BankAccount.plaid_account_id).in_(ids))).all() if ids else []
    by_id = {r.plaid_account_id: r for r in rows}
    for a in accounts:
        row = by_id.get(a.account_id)
        if row is None:
            row = BankAccount(
                user_id=item.user_id,
                item_id=item.id,
                plaid_account_id=a.account_id,
                name=a.name[:128],
                type=a.type[:32],
            )
        elif row.user_id != item.user_id:
            continue
        row.name, row.official_name, row.mask = a.name[:128], a.official_name, a.mask
        row.type, row.subtype, row.iso_currency_code = a.type[:32], a.subtype, a.iso_currency_code
        row.current_minor, row.available_minor, row.limit_minor = a.current_minor, a.available_minor, a.limit_minor
        row.institution_name, row.balance_updated_at, row.item_id = item.institution_name, now, item.id
        session.add(row)
    session.flush()
    mine = session.exec(select(BankAccount).where(BankAccount.item_id == item.id)).all()
    return {r.plaid_account_id: r.id for r in mine}


def _placeholder_account(session: Any, item: PlaidItem, plaid_account_id: str) -> uuid.UUID:
    """An account Plaid named in a transaction but not in /accounts/get."""
    row = BankAccount(
        user_id=item.user_id,
        item_id=item.id,
        plaid_account_id=plaid_account_id,
        name="Account",
        type="other",
        institution_name=item.institution_name,
    )
    session.add(row)
    session.flush()
    return row.id


def _record_calls(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, events: list[CallEvent]) -> None:
    """Keep every Plaid call of the run (endpoint, request id, status; never a token)."""
    if not events:
        return
    try:
        with unit_of_work(c.engine, immediate=True) as session:
            for e in events:
                session.add(
                    PlaidApiEvent(
                        user_id=user_id,
                        item_id=item_id,
                        endpoint=e.endpoint[:64],
                        request_id=(e.request_id or None) and e.request_id[:64],
                        duration_ms=e.duration_ms,
                        http_status=e.http_status,
                        error_code=e.error_code,
                    )
                )
    except SQLAlchemyError:
        log.exception("could not record Plaid calls")
