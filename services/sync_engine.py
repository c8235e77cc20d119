"""One item's sync: fetch every page into staging, then apply rows, balances and cursor in ONE transaction.

The steps live in sync_fetch (pages into staging), sync_commit (the one apply transaction) and sync_run
(counters, retries); this module runs them and turns each way a run can end into a SyncResult.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from models import ItemSyncState, PlaidItem, SyncRun
from services import mail_queue
from services.banking import get_access_token
from services.banking_access import KEY_MISSING
from services.container import Container
from services.db import outage_reason, unit_of_work
from services.errors import DecryptionError, FinsyncError, KeyMissing, NotFound, NotYours
from services.notify import queue_connection_alert
from services.plaid_client import PlaidGateway
from services.plaid_errors import ACCESS_WITHDRAWN, NOT_OFFERED, LoginRequired, MutationDuringPagination, PlaidError
from services.plaid_events import calls_for
from services.plaid_types import CallEvent
from services.sync_commit import News, apply_run
from services.sync_fetch import fetch
from services.sync_run import LeaseLost, Progress, RunCounters, TooManyPages, retrying
from services.sync_state import (
    acquire,
    close_interrupted,
    failure_backoff,
    finish_unsuccessful,
    release,
    start_run,
    worker_name,
)
from services.sync_types import (
    LOGIN_PROBE_HOURS,
    PREPARING_RETRY_MINUTES,
    RetryPolicy,
    SyncResult,
    default_policy,
    explained,
)

__all__ = ["LeaseLost", "Progress", "TooManyPages", "sync_item"]

log = logging.getLogger("finsync.sync")
INTERRUPTED_RETRY = timedelta(minutes=5)  # a run cut short (a rerun, Ctrl-C) is finished by the scheduler soon after
INTERNAL_MESSAGE = "finsync hit an unexpected error while syncing. Nothing to do: it tries again later; the operator can see why in the logs."


def _waits_for_sign_in(item: PlaidItem, state: ItemSyncState | None, now: datetime) -> bool:
    """True while a login-required item waits for its daily probe: not repaired nor asked to sync since its last try."""
    if state is None or state.state != "login_required" or state.last_attempt_at is None:
        return False
    last = state.last_attempt_at
    if item.status == "ok" or (item.sync_requested_at is not None and item.sync_requested_at > last):
        return False  # repaired (Link update mode, LOGIN_REPAIRED) or a webhook asked after the failure
    # The probe's time is the one the failed run scheduled (from its start), as the scheduler sees it.
    return now < (state.next_due_at or last + timedelta(hours=LOGIN_PROBE_HOURS))


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
        if item is None:
            raise NotFound("No such bank connection.")
        if item.user_id != user_id:
            raise NotYours("No such bank connection.", user_id=user_id, what=f"sync of bank connection {item_id}")
        name = item.institution_name
        state = session.get(ItemSyncState, item_id)
        if not explicit and _waits_for_sign_in(item, state, now):
            assert state is not None
            return SyncResult(item_id, "login_required", name, error_code=state.error_code, message=state.message)
    gw = gateway or c.plaid
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
        interval = timedelta(hours=c.settings.sync_interval_hours)
        backoff = failure_backoff(state.consecutive_failures, interval)
    run = RunCounters(run_row.id, item_id, owner, progress)
    original = gw.recorder

    def record(event: CallEvent) -> None:
        run.events.append(event)
        if original is not None:
            original(event)

    gw = gw.with_recorder(record)
    try:
        with calls_for(user_id, item_id):  # the container's recorder logs each call, tagged with this item
            result = _execute(
                c, gw, item, run, start_cursor, policy or default_policy(c.settings.effective_plaid_env), now, backoff
            )
        log.info(  # one line per run for the operator: ids, counts and codes, never a name or amount
            "sync run=%s item=%s trigger=%s status=%s pages=%d added=%d modified=%d removed=%d error=%s",
            run.run_id, item_id, run_row.trigger, result.status, result.pages,
            result.added, result.modified, result.removed, result.error_code,
        )  # fmt: skip
        return result
    except BaseException:
        log.info("sync run=%s item=%s trigger=%s status=interrupted", run.run_id, item_id, run_row.trigger)
        _interrupted(c, run)
        raise


def _interrupted(c: Container, run: RunCounters) -> None:
    """Close the run and free the item when an exception escapes a run (never raises: the caller re-raises)."""
    try:
        at = c.clock()
        close_interrupted(
            c.engine, item_id=run.item_id, run_id=run.run_id, owner=run.owner, now=at, retry_at=at + INTERRUPTED_RETRY
        )
    except Exception:
        log.exception("could not close interrupted sync run %s", run.run_id)
        try:
            release(c.engine, run.item_id, run.owner)  # the lease would expire anyway; this is just sooner
        except Exception:
            log.exception("could not release the lease of item %s", run.item_id)


def _removed(c: Container, item_id: uuid.UUID) -> bool:
    with unit_of_work(c.engine) as session:
        return session.get(PlaidItem, item_id) is None


def _landed(c: Container, item: PlaidItem, run: RunCounters) -> SyncResult | None:
    """After a database error: the run's result if its apply transaction committed anyway (its answer was lost).

    Only that transaction marks the run "ok", so the run's own record tells. None when it did not commit, or
    when the database cannot be asked (the run is then recorded failed, and the next run starts from wherever
    the database really is: nothing is lost or applied twice either way).
    """
    try:
        with unit_of_work(c.engine) as session:
            row = session.get(SyncRun, run.run_id)
            if row is None or row.status != "ok":
                return None
            counts = (row.pages, row.added, row.modified, row.removed)
            return SyncResult(item.id, "ok", item.institution_name, *counts, row.error_code, row.message, run.run_id)
    except SQLAlchemyError:
        return None


def _unexpected(exc: Exception) -> tuple[str, str]:
    """The code and plain words recorded for an exception no branch of ``_execute`` expects."""
    if isinstance(exc, DecryptionError):
        return KEY_MISSING if isinstance(exc, KeyMissing) else "TOKEN_UNREADABLE", str(exc)[:500]
    if isinstance(exc, FinsyncError):
        return "INTERNAL_ERROR", str(exc)[:500]  # our errors carry a message a user can act on
    return "INTERNAL_ERROR", INTERNAL_MESSAGE


def _execute(  # noqa: PLR0911 - one return per way a run can end
    c: Container,
    gw: PlaidGateway,
    item: PlaidItem,
    run: RunCounters,
    start: str,
    policy: RetryPolicy,
    now: datetime,
    backoff: timedelta,
) -> SyncResult:
    counts = (0, 0, 0)

    def fail(status: Any, code: str | None, message: str, due: datetime | None, mark: str | None = None) -> SyncResult:
        mail = finish_unsuccessful(
            c.engine,
            item_id=item.id,
            run_id=run.run_id,
            owner=run.owner,
            now=c.clock(),
            status=status,
            item_status=mark,
            error_code=code,
            message=message,
            next_due_at=due,
            counts=(run.pages, run.restarts, run.retries),
            request_ids=run.request_ids,
            alert=lambda session, became: queue_connection_alert(
                session, c, item.user_id, item.institution_name, became, code
            ),
        )
        if mail is None:  # the apply had committed after all: report the success it was
            landed = _landed(c, item, run)
            if landed is not None:
                mail_queue.after_commit(c, news.mail)
                return landed
            mail = []
        mail_queue.after_commit(c, mail)
        return SyncResult(item.id, status, item.institution_name, run.pages, *counts, code, message, run.run_id)

    interval = timedelta(hours=c.settings.sync_interval_hours)
    news = News()  # kept here: if the commit's answer is lost but the commit landed, its queued mail is to send
    try:
        token = get_access_token(c, item.user_id, item.id)
        cursor = fetch(c, gw, token, run, start, policy)
        if cursor is None:
            due = now + timedelta(minutes=PREPARING_RETRY_MINUTES)
            return fail("preparing", None, explained("PREPARING"), due)
        accounts = retrying(lambda: gw.accounts_get(token), policy, run).accounts
        run.report("applying")
        result = apply_run(c, item, run, start, cursor, accounts, now, news)
    except LoginRequired as exc:
        return fail("login_required", exc.code, explained(exc.code), now + timedelta(hours=LOGIN_PROBE_HOURS))
    except MutationDuringPagination as exc:
        return fail("failed", exc.code, explained(exc.code), now + timedelta(minutes=5))
    except PlaidError as exc:
        if exc.code in ACCESS_WITHDRAWN | NOT_OFFERED:  # for good: words that say so, a daily probe, no hourly retries
            # its card says so (not "Connected."): link it again, or remove it
            mark = "permission_revoked" if exc.code in ACCESS_WITHDRAWN else "error"
            return fail("failed", exc.code, explained(exc.code), now + timedelta(hours=LOGIN_PROBE_HOURS), mark)
        return fail("failed", exc.code, explained(exc.code, exc.error_type), now + min(interval, timedelta(hours=1)))
    except TooManyPages:
        return fail("failed", "TOO_MANY_PAGES", explained("TOO_MANY_PAGES"), now + interval)
    except LeaseLost:
        msg = "Another sync of this connection took over; its result will appear here."
        if _removed(c, item.id):  # its state went with it: nothing was written, and nothing will be
            msg = "This connection was removed while it synced; nothing from this sync was kept."
        return SyncResult(item.id, "already_syncing", item.institution_name, run.pages, message=msg)
    except SQLAlchemyError as exc:
        landed = _landed(c, item, run)
        if landed is None:
            log.exception("sync of item %s could not be saved", item.id)
            return fail("failed", "DATABASE_ERROR", explained("DATABASE_ERROR"), now + interval)
        why = outage_reason(exc)
        log.warning("sync of item %s: the commit landed, but its answer was lost (%s)", item.id, why)
        result = landed
    except Exception as exc:  # a bug or a broken row must end this run, not leave it running and retried every tick
        log.exception("sync of item %s failed unexpectedly", item.id)
        code, message = _unexpected(exc)
        return fail("failed", code, message, now + backoff)
    run.report("done", result.added + result.modified + result.removed)
    mail_queue.after_commit(c, news.mail)  # queued with the sync's commit (also when its answer was lost)
    return result
