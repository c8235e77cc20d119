"""The ledger: one transaction and its history, and the user's edits of a transaction (pages of them: services/ledger_listing.py)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, delete
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from models import (
    BankAccount,
    LedgerTransaction,
    TransactionChange,
)
from services import safe_text
from services.container import Container
from services.db import unit_of_work
from services.errors import DatabaseUnavailable, InputError, NotFound, NotYours
from services.sync_types import ChangeView

MAX_TAGS = 20
MAX_TAGS_TEXT = 1000  # the tags together, each with its comma
MAX_CATEGORY = 128
MAX_NOTE = 2000


@dataclass(frozen=True)
class TransactionView:
    """A transaction as pages show it: Plaid's fields plus the user's, and the effective category."""

    transaction_id: str
    account_id: uuid.UUID
    date: date
    name: str
    merchant_name: str | None
    amount_minor: int
    iso_currency_code: str | None
    pending: bool
    category: str | None
    plaid_category: str | None
    note: str | None
    tags: tuple[str, ...]
    excluded: bool
    category_override: str | None = None  # what the user set; ``category`` falls back to Plaid's
    version: str = ""  # changes with every saved edit: a form opened at one version refuses to save over another
    pending_transaction_id: str | None = None  # the pending charge this posted one replaced


def split_tags(raw: str | None) -> tuple[str, ...]:
    """Stored tags (comma-separated) as a tuple."""
    return tuple(t for t in (raw or "").split(",") if t)


def view(t: LedgerTransaction) -> TransactionView:
    """The page-facing shape of a ledger row."""
    return TransactionView(
        t.plaid_transaction_id,
        t.account_id,
        t.date,
        t.name,
        t.merchant_name,
        t.amount_minor,
        t.iso_currency_code or t.unofficial_currency_code,  # the currency, ISO or Plaid's unofficial (BTC)
        t.pending,
        t.category_override or t.category_detailed,
        t.category_detailed,
        t.note,
        split_tags(t.tags),
        t.excluded,
        t.category_override,
        edit_version(t),
        t.pending_transaction_id,
    )


def edit_version(t: LedgerTransaction) -> str:
    """A fingerprint of what the user owns on the row (a timestamp alone can repeat within a second)."""
    owned = (t.user_edited_at.isoformat() if t.user_edited_at else "", t.category_override, t.note, t.tags, t.excluded)
    return hashlib.sha256(repr(owned).encode()).hexdigest()[:16]


def _resolve(session: Session, user_id: uuid.UUID, transaction_id: str, *, lock: bool = False) -> LedgerTransaction:
    """The user's transaction by id, or the posted transaction that replaced that pending one.

    ``lock`` (an edit): on PostgreSQL the row stays locked until the edit commits, so a sync posting that
    pending transaction meanwhile waits and carries the edit over, or has already committed and the edit
    finds the posted row. (SQLite's edit holds the only write lock from its start.)
    """
    t = session.get(LedgerTransaction, transaction_id, with_for_update=lock)
    if t is None:  # posted since the page was drawn: the edit belongs to its posted twin
        twin = select(LedgerTransaction).where(
            LedgerTransaction.user_id == user_id, LedgerTransaction.pending_transaction_id == transaction_id
        )
        t = session.exec(twin.with_for_update() if lock else twin).first()
    gone = "That transaction is gone: your bank removed it. Pick another one."
    if t is None:
        raise NotFound(gone)
    if t.user_id != user_id:
        raise NotYours(gone, user_id=user_id, what=f"transaction {transaction_id[:128]}")
    return t


STALE_EDIT = (
    "This transaction was edited somewhere else (another tab?) after you opened it. "
    "Nothing was saved: check what it says now and save again."
)


def edit_transaction(
    c: Container,
    user_id: uuid.UUID,
    transaction_id: str,
    *,
    category: str | None = None,
    note: str | None = None,
    tags: Sequence[str] | None = None,
    excluded: bool | None = None,
    opened: TransactionView | None = None,
) -> TransactionView:
    """Change what the user owns on a transaction (None leaves a field alone; "" clears category or note).

    Sync never overwrites these, and they move to the posted transaction when a pending one posts (an
    edit of a pending transaction that has just posted lands on the posted one). With ``opened`` (the view
    the form was drawn from), an edit saved elsewhere since then refuses this one instead of overwriting it.
    """
    try:
        with unit_of_work(c.engine, immediate=True) as session:  # SQLite: wait for a running sync, never fail
            t = _resolve(session, user_id, transaction_id, lock=True)
            if opened is not None and edit_version(t) != opened.version:
                raise InputError(STALE_EDIT)
            _apply_edit(t, category=category, note=note, tags=tags, excluded=excluded)
            t.user_edited_at = c.clock()
            session.add(t)
            return view(t)
    except OperationalError:  # SQLite's busy timeout ran out behind a very long sync, or the database went away
        raise DatabaseUnavailable(
            "The database did not answer in time. Nothing was saved; try again in a minute."
        ) from None


def _apply_edit(
    t: LedgerTransaction,
    *,
    category: str | None,
    note: str | None,
    tags: Sequence[str] | None,
    excluded: bool | None,
) -> None:
    """Validate and set the user's fields on the row (None leaves a field alone)."""
    if category is not None:
        if len(category) > MAX_CATEGORY:
            raise InputError(f"A category has at most {MAX_CATEGORY} characters.")
        t.category_override = safe_text.clean(category).strip() or None
    if note is not None:
        if len(note) > MAX_NOTE:
            raise InputError(f"A note has at most {MAX_NOTE:,} characters.")
        t.note = "\n".join(safe_text.clean(line) for line in note.splitlines()).strip() or None  # keeps its lines
    if tags is not None:
        # a comma would split the tag when read back: it becomes a space; runs of blanks become one, none at the ends
        clean = list(
            dict.fromkeys(x for x in (" ".join(safe_text.clean(x).replace(",", " ").split()) for x in tags) if x)
        )
        if len(clean) > MAX_TAGS or sum(len(x) + 1 for x in clean) > MAX_TAGS_TEXT:
            raise InputError(f"Use at most {MAX_TAGS} tags of reasonable length.")
        t.tags = ",".join(clean) or None
    if excluded is not None:
        t.excluded = excluded


def get_transaction(c: Container, user_id: uuid.UUID, transaction_id: str) -> TransactionView:
    """One of the user's transactions (the posted one, when a pending one has posted since)."""
    with unit_of_work(c.engine) as session:
        return view(_resolve(session, user_id, transaction_id))


def transaction_history(c: Container, user_id: uuid.UUID, transaction_id: str) -> list[ChangeView]:
    """What Plaid changed on a transaction (and on its pending twin), oldest first."""
    with unit_of_work(c.engine) as session:
        t = _resolve(session, user_id, transaction_id)
        transaction_id = t.plaid_transaction_id
        rows = session.exec(
            select(TransactionChange)
            .where(TransactionChange.user_id == user_id, TransactionChange.plaid_transaction_id == transaction_id)
            .order_by(col(TransactionChange.changed_at), col(TransactionChange.id))
        ).all()
        return [ChangeView(r.changed_at, r.field_name, r.old_value, r.new_value) for r in rows]


def account_label(name: str, mask: str | None) -> str:
    """An account as its owner knows it: its name and the last digits of its number."""
    return f"{name} ••{mask}" if mask else name


def forget_transactions(session: Session, user_id: uuid.UUID, ids: Sequence[str] | Select[Any]) -> int:
    """Delete the user's transactions with these Plaid ids (a list, or a query of them) and their change history;
    returns how many transactions went. The caller's unit of work commits."""
    t, h = LedgerTransaction, TransactionChange
    session.execute(delete(h).where(col(h.user_id) == user_id, col(h.plaid_transaction_id).in_(ids)))
    gone = session.execute(delete(t).where(col(t.user_id) == user_id, col(t.plaid_transaction_id).in_(ids)))
    return int(getattr(gone, "rowcount", 0) or 0)


def account_names(c: Container, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Display names of the user's accounts (including ones kept after their bank was removed); with accounts at
    more than one bank, each names its bank too (every bank has its "Everyday Checking")."""
    with unit_of_work(c.engine) as session:
        rows = session.exec(select(BankAccount).where(col(BankAccount.user_id) == user_id)).all()
    banks = {a.institution_name for a in rows if a.institution_name}
    names = {}
    for a in rows:
        name = account_label(a.name, a.mask)
        names[a.id] = f"{name} ({a.institution_name})" if len(banks) > 1 and a.institution_name else name
    return names
