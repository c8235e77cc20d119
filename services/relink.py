"""Linking a bank again after removing it with "keep history": the kept history is continued, never doubled.

Plaid gives a new link new account and transaction ids, and its first syncs send the same history again.
So at link time a kept (detached) account is taken back by the new link when exactly one kept account of
that user at that institution has the same mask, name and type; and the syncs that follow match each
kept transaction of such an account with one the new link sent (same day, amount and name; a kept pending
one: same amount, else same name, within its posting window), keep the user's edits and Plaid history on the
new row, and delete the kept copy. Kept posted rows nobody matches (older than the bank still sends) stay as
history; a kept hold nobody matches within the month, from days the new link's history covers, is one the bank
dropped, and goes (an older one stays, like the posted rows of its time).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from models import BankAccount, LedgerTransaction, PlaidItem, SyncStaged, TransactionChange
from services.ledger import forget_transactions
from services.plaid_types import Account

RECONCILE_DAYS = 30  # Plaid sends the rest of a new link's history within hours; a month is plenty
POSTING_WINDOW = (timedelta(days=-3), timedelta(days=14))  # a hold posts a few days later, at most two weeks
_EDITS = ("category_override", "note", "tags", "excluded", "user_edited_at")


def reattach_kept(session: Session, item: PlaidItem, accounts: Iterable[Account], now: datetime) -> int:
    """Give the new item the kept accounts it is the same login for; return how many were taken back."""
    kept = session.execute(
        select(BankAccount).where(
            col(BankAccount.user_id) == item.user_id,
            col(BankAccount.item_id).is_(None),
            col(BankAccount.institution_name) == item.institution_name[:128],
        )
    ).scalars()
    by_key: dict[tuple[str | None, str, str], list[BankAccount]] = defaultdict(list)
    for row in kept:
        by_key[(row.mask, row.name, row.type)].append(row)
    taken = 0
    for a in accounts:
        rows = by_key.get((a.mask, a.name[:128], a.type[:32]), [])
        if len(rows) != 1:  # none, or several kept accounts it could be: never guess whose history to continue
            continue
        row = rows.pop()
        row.plaid_account_id, row.item_id, row.disconnected_at, row.relinked_at = a.account_id, item.id, None, now
        session.add(row)
        taken += 1
    session.flush()
    return taken


@dataclass(frozen=True)
class _Row:
    tid: str
    account_id: uuid.UUID
    day: date
    amount: int
    name: str
    pending: bool
    edited: bool


def _row(t: LedgerTransaction) -> _Row:
    edited = bool(t.category_override or t.note or t.tags or t.excluded)
    name = " ".join(t.name.split()).casefold()  # the bank may change case or spacing between the two links
    return _Row(t.plaid_transaction_id, t.account_id, t.date, t.amount_minor, name, t.pending, edited)


def reconcile_kept(session: Session, item: PlaidItem, run_id: uuid.UUID, now: datetime) -> dict[str, date]:
    """Match kept rows of the item's taken-back accounts with rows this run added; return the ids that continue one,
    with their dates.

    Runs inside the sync's apply transaction, before its staging rows are dropped.
    """
    accounts = session.execute(
        select(BankAccount).where(col(BankAccount.item_id) == item.id, col(BankAccount.relinked_at).is_not(None))
    ).scalars().all()  # fmt: skip
    if not accounts:
        return {}
    ids = [a.id for a in accounts]
    # Locked, and read afresh over what the session holds: an edit saved meanwhile is carried over (it committed
    # first), or waits and then finds the kept row gone; never saved on a row this apply is about to delete.
    locked = (
        select(LedgerTransaction)
        .where(col(LedgerTransaction.account_id).in_(ids), col(LedgerTransaction.item_id).is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    kept = [_row(t) for t in session.execute(locked).scalars()]
    staged = select(SyncStaged.plaid_transaction_id).where(col(SyncStaged.run_id) == run_id)
    fresh = [
        _row(t)
        for t in session.execute(
            select(LedgerTransaction).where(
                col(LedgerTransaction.account_id).in_(ids),
                col(LedgerTransaction.item_id) == item.id,
                col(LedgerTransaction.plaid_transaction_id).in_(staged),
            )
        ).scalars()
    ]
    pairs = _pair(kept, fresh)
    for old, new in pairs:
        _continue(session, item.user_id, old, new)
    _settle(session, accounts, kept, pairs, now)
    return {new.tid: new.day for _, new in pairs}


def _pair(kept: list[_Row], fresh: list[_Row]) -> list[tuple[_Row, _Row]]:
    """One new row per kept row: posted ones by (account, day, amount, name); pending ones by nearest day."""
    free: dict[tuple[uuid.UUID, date, int, str], list[_Row]] = defaultdict(list)
    for r in sorted(fresh, key=lambda r: r.tid):
        free[(r.account_id, r.day, r.amount, r.name)].append(r)
    pairs: list[tuple[_Row, _Row]] = []
    used: set[str] = set()
    for k in sorted((k for k in kept if not k.pending), key=lambda r: r.tid):
        bucket = [r for r in free.get((k.account_id, k.day, k.amount, k.name), []) if r.tid not in used]
        if bucket:
            used.add(bucket[0].tid)
            pairs.append((k, bucket[0]))
    low, high = POSTING_WINDOW
    held = sorted((k for k in kept if k.pending), key=lambda r: r.tid)
    # First the holds that posted for the same amount; then, by name, those that posted for another (a tip, a fuel
    # pump's final charge), so a changed amount never takes the row an unchanged one was waiting for.
    for same_amount in (True, False):
        for k in held:
            if k.tid in used:
                continue
            near = [
                r
                for r in fresh
                if r.tid not in used and r.account_id == k.account_id and low <= r.day - k.day <= high
                if (r.amount == k.amount if same_amount else r.name == k.name)
            ]
            if near:
                best = min(near, key=lambda r: (r.name != k.name, abs((r.day - k.day).days), r.tid))
                used.update((best.tid, k.tid))
                pairs.append((k, best))
    return pairs


def _continue(session: Session, user_id: uuid.UUID, old: _Row, new: _Row) -> None:
    """The new row carries on the kept one: its edits (unless the new one has its own) and its history."""
    if old.edited and not new.edited:
        source = session.get(LedgerTransaction, old.tid)
        target = session.get(LedgerTransaction, new.tid)
        if source is not None and target is not None:
            for name in _EDITS:
                setattr(target, name, getattr(source, name))
            session.add(target)
    session.execute(
        update(TransactionChange)
        .where(col(TransactionChange.user_id) == user_id, col(TransactionChange.plaid_transaction_id) == old.tid)
        .values(plaid_transaction_id=new.tid)
    )
    forget_transactions(session, user_id, [old.tid])  # its history now belongs to the new row
    session.flush()


def _settle(
    session: Session, accounts: Iterable[BankAccount], kept: list[_Row], pairs: list[tuple[_Row, _Row]], now: datetime
) -> None:
    """Stop looking once every kept row is matched, or a month after the link: what is left is older history.

    A kept hold still unmatched then, from days the new link's history covers (its posting window starts on or
    after the earliest transaction the link sent for that account), is one the bank dropped: Plaid would have
    removed it had the link lived, so it goes, as it would have in a sync. An older one is history the bank no
    longer sends, kept like the posted rows beside it.
    """
    matched = {k.tid for k, _ in pairs}
    left: dict[uuid.UUID, list[_Row]] = defaultdict(list)
    for k in kept:
        if k.tid not in matched:
            left[k.account_id].append(k)
    for account in accounts:
        assert account.relinked_at is not None
        if not left[account.id] or now - account.relinked_at > timedelta(days=RECONCILE_DAYS):
            account.relinked_at = None
            session.add(account)
            holds = [k for k in left[account.id] if k.pending]
            sent_from = _earliest_sent(session, account) if holds else None
            dropped = [k.tid for k in holds if sent_from is not None and k.day + POSTING_WINDOW[0] >= sent_from]
            if dropped:
                forget_transactions(session, account.user_id, dropped)


def _earliest_sent(session: Session, account: BankAccount) -> date | None:
    """The day of the oldest transaction the account's new link has sent (None: none yet)."""
    t = LedgerTransaction
    query = select(func.min(col(t.date))).where(col(t.account_id) == account.id, col(t.item_id) == account.item_id)
    return session.execute(query).scalar_one_or_none()
