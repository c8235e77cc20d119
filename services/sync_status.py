"""What the user sees of their syncs: each connection's state in words, the runs, and when the ledger last changed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session, col, func, select

from models import AccountCheck, BankAccount, ItemSyncState, PlaidItem, SyncJob, SyncRun
from services.container import Container
from services.db import unit_of_work
from services.sync_types import ItemSyncStatus, RunView, explain


def item_sync_status(c: Container, user_id: uuid.UUID) -> list[ItemSyncStatus]:
    """Per connection: last good sync, next scheduled one, state in words, and accounts whose balance drifted."""
    now = c.clock()
    with unit_of_work(c.engine) as session:
        pairs = session.exec(
            select(PlaidItem, ItemSyncState)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id), isouter=True)
            .where(PlaidItem.user_id == user_id)
            .order_by(col(PlaidItem.created_at))
        ).all()
        flagged, asked = _flagged_accounts(session, user_id), _bank_news(session, user_id)
        out = []
        for item, state in pairs:
            if state is None:
                out.append(
                    ItemSyncStatus(item.id, item.institution_name, None, now, "new", "Waiting for the first sync.")
                )
            else:
                out.append(_status(item, state, now, tuple(flagged.get(item.id, ())), asked.get(item.id)))
        return out


def _flagged_accounts(session: Session, user_id: uuid.UUID) -> dict[uuid.UUID | None, list[uuid.UUID]]:
    """Per connection, its accounts whose balance the transactions no longer explain."""
    flagged = session.exec(
        select(BankAccount.item_id, BankAccount.id)
        .join(AccountCheck, col(AccountCheck.account_id) == col(BankAccount.id))
        .where(BankAccount.user_id == user_id, col(AccountCheck.flagged).is_(True))
    ).all()
    by_item: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for item_id, account_id in flagged:
        by_item.setdefault(item_id, []).append(account_id)
    return by_item


def _bank_news(session: Session, user_id: uuid.UUID) -> dict[uuid.UUID, tuple[datetime, datetime]]:
    """The bank said it has news: a webhook's sync, queued (held back, when its budget is spent); (due, asked at)."""
    rows = session.exec(
        select(SyncJob.item_id, SyncJob.due_at, SyncJob.created_at).where(
            col(SyncJob.user_id) == user_id, col(SyncJob.status) == "queued", col(SyncJob.reason) == "webhook"
        )
    ).all()
    return {item_id: (due, created) for item_id, due, created in rows}


def _status(
    item: PlaidItem,
    state: ItemSyncState,
    now: datetime,
    flagged: tuple[uuid.UUID, ...],
    asked: tuple[datetime, datetime] | None,
) -> ItemSyncStatus:
    """One connection's sync state in words, and when it is next synced."""
    syncing = state.lease_owner is not None and (state.lease_expires_at or now) > now
    label = "syncing" if syncing else state.state
    message = "Syncing now…" if syncing else state.message or ("Up to date." if label == "ok" else "")
    due = state.next_due_at
    news, asked_at = asked or (None, None)
    began = state.last_success_started_at
    if asked_at is not None and began is not None and asked_at <= began:
        news = None  # asked before the last good sync began ("Sync now", say): that sync brought it in
    if news is not None and news > now and not syncing and item.status == "ok":  # held back: say until when
        due = news if due is None else min(due, news)
        if label == "ok":
            message = "Your bank has new data: it comes in with the next sync."
    if not syncing and item.status == "login_required":  # the card's badge says what to do about it
        message = "Syncing waits until you repair the connection; until then the bank is tried once a day."
    elif not syncing and item.status == "ok" and label == "login_required":  # repaired since that try
        message = "Connected again: the next sync picks up from here."
    return ItemSyncStatus(
        item.id, item.institution_name, state.last_success_at, due, label, message, flagged, state.last_attempt_at
    )


def list_runs(c: Container, user_id: uuid.UUID, limit: int = 100) -> list[RunView]:
    """The user's sync runs, newest first, each failure explained with its fix; a removed bank's (its history kept)
    have no ``item_id`` and no fix."""
    with unit_of_work(c.engine) as session:
        rows = session.exec(
            select(SyncRun, PlaidItem.institution_name)  # a linked bank's name as it is now (banks rename)
            .join(PlaidItem, col(PlaidItem.id) == col(SyncRun.item_id), isouter=True)
            .where(SyncRun.user_id == user_id)
            .order_by(col(SyncRun.started_at).desc())
            .limit(max(1, min(limit, 1000)))
        ).all()
        out = []
        for run, linked_name in rows:
            what, fix = explain(run.error_code)
            name = linked_name or run.institution_name
            if run.item_id is None:  # a removed bank: nothing left to repair or sync
                fix = ""
            out.append(
                RunView(
                    run.id, run.item_id, name, run.trigger, run.started_at, run.finished_at, run.status,
                    run.pages, run.added, run.modified, run.removed, run.error_code, what, fix,
                    tuple(r for r in run.request_ids.split(",") if r),
                )
            )  # fmt: skip
        return out


def last_change(c: Container, user_id: uuid.UUID) -> datetime | None:
    """When a sync last brought the user's ledger something (a transaction added, changed or removed); None: never.

    An open Transactions page asks this now and then, to say that its list is behind (through the runs' user
    index: the user's runs, not the ledger)."""
    r = SyncRun
    changed = (col(r.added) + col(r.modified) + col(r.removed)) > 0
    with unit_of_work(c.engine) as session:
        return session.exec(
            select(func.max(col(r.finished_at))).where(col(r.user_id) == user_id, col(r.status) == "ok", changed)
        ).one()
