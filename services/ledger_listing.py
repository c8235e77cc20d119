"""The ledger a page at a time: the user's transactions newest first, and searching them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, and_, cast, func, literal, or_
from sqlmodel import Session, col, select

from models import BankAccount, LedgerTransaction
from services import safe_text
from services.container import Container
from services.db import unit_of_work
from services.ledger import TransactionView, account_label, view
from services.text_fold import fold, search_fold


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally (``%`` and ``_`` typed by a user are not wildcards)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


PAGE_SIZE = 500  # rows per page of the Transactions page: bounded, however long the ledger
Cursor = tuple[date, str]  # (date, transaction id) of the row a page follows: the page starts right after it


class TransactionPage(list[TransactionView]):
    """One page of the user's transactions, newest first (a list of them), and where it sits in the whole list.

    ``total``: how many transactions match (all pages); ``position``: the 1-based place of the first row (0 when
    there is none); ``older``: the start of the next older page (None on the last page); ``newer``: the start of
    the page before this one (None when that is the first page; there is one only when ``position > 1``).
    """

    def __init__(
        self, rows: Sequence[TransactionView], *, total: int, position: int, older: Cursor | None, newer: Cursor | None
    ) -> None:
        super().__init__(rows)
        self.total, self.position, self.older, self.newer = total, position, older, newer


def _contains(column: Any, needle: str, sqlite: bool) -> ColumnElement[bool]:
    """``column`` holds ``needle``, case and accents aside (services/text_fold.py), both folded by the database.

    The fold costs several times the built-in ``lower()``; a value that is all ASCII (its length in bytes is its
    length in letters) folds to its ``lower()``, so only the others take it."""
    pattern: ColumnElement[str]
    if sqlite:  # the fold is this process's own function: the needle folded here is folded as the database would
        folded = str(fold(needle))
        pattern, ascii_may_hold = literal(_like(folded)), folded.isascii()
        beyond_ascii = func.length(cast(column, LargeBinary)) != func.length(column)
    else:  # the database folds the needle too ("café" becomes ASCII there): an ASCII value may hold it
        pattern, ascii_may_hold = search_fold(literal(_like(needle))), True
        beyond_ascii = func.octet_length(column) != func.char_length(column)
    by_fold = and_(beyond_ascii, search_fold(column).like(pattern, escape="\\"))
    if not ascii_may_hold:
        return by_fold
    return or_(func.lower(column).like(pattern, escape="\\"), by_fold)


def _matching(session: Session, user_id: uuid.UUID, search: str, *, sqlite: bool) -> list[ColumnElement[bool]]:
    """The user's transactions whose name, merchant, category (theirs or the bank's), account (its name, bank or
    last four digits), note or tags contain ``search`` (any case, accents aside)."""
    where: list[ColumnElement[bool]] = [col(LedgerTransaction.user_id) == user_id]
    needle = safe_text.clean(search).strip()[:100]  # as stored text is cleaned (a NUL no database takes, bidi marks)
    if needle:
        t = LedgerTransaction
        searched = (t.name, t.merchant_name, t.category_override, t.category_detailed, t.note)
        found = [_contains(col(f), needle, sqlite) for f in searched]  # NULL: no match
        # tags are stored "work,client-x" and shown "work, client-x": either way of typing finds them
        found.append(_contains(col(t.tags), re.sub(r"\s*,\s*", ",", needle), sqlite))
        # The bank's category as the page writes it ("Food and drink · Fast food" for FOOD_AND_DRINK_FAST_FOOD)
        code = re.sub(r"\s*·\s*|\s+", "_", needle)
        if code != needle and code.isascii():
            found.append(func.lower(col(t.category_detailed)).like(literal(_like(code.lower())), escape="\\"))
        # The account column: its name, its bank, its last four digits. A handful of rows, read first: the accounts
        # found join the search as a list of ids (a subquery in the OR made PostgreSQL's search twice as slow).
        a = BankAccount
        named = or_(*(_contains(col(f), needle, sqlite) for f in (a.name, a.institution_name, a.mask)))
        accounts = {*session.exec(select(col(a.id)).where(col(a.user_id) == user_id, named)).all()}
        accounts |= _shown_accounts(session, user_id, needle)
        if accounts:
            found.append(col(t.account_id).in_(accounts))
        where.append(or_(*found))
    return where


def _shown_accounts(session: Session, user_id: uuid.UUID, needle: str) -> set[uuid.UUID]:
    """The user's accounts whose label as the Transactions page shows it ("Rewards Card ••2938 (Maple Credit
    Union)") holds ``needle``: a cell copied from the grid, or "••2938", finds its account's rows."""
    a, typed = BankAccount, fold(needle)
    rows = session.exec(select(a.id, a.name, a.mask, a.institution_name).where(col(a.user_id) == user_id)).all()
    return {
        account_id
        for account_id, name, mask, bank in rows
        if str(typed) in str(fold(account_label(name, mask) + (f" ({bank})" if bank else "")))
    }


def _after(at: Cursor) -> ColumnElement[bool]:
    """Rows after ``at`` in the list's order (date newest first, then transaction id)."""
    day, tid = at
    when, key = col(LedgerTransaction.date), col(LedgerTransaction.plaid_transaction_id)
    return and_(when <= day, or_(when < day, key > tid))  # ``when <= day`` lets the (user_id, date) index seek


def _up_to(at: Cursor) -> ColumnElement[bool]:
    """Rows at ``at`` or before it in the list's order."""
    day, tid = at
    when, key = col(LedgerTransaction.date), col(LedgerTransaction.plaid_transaction_id)
    return and_(when >= day, or_(when > day, key <= tid))


def _count(session: Session, where: Sequence[ColumnElement[bool]]) -> int:
    return session.exec(select(func.count()).select_from(LedgerTransaction).where(*where)).one()


def list_transactions(
    c: Container, user_id: uuid.UUID, *, search: str = "", start: Cursor | None = None, limit: int = PAGE_SIZE
) -> TransactionPage:
    """A page of the user's transactions, newest first (date, then transaction id: a stable order), right after
    the row ``start`` names (the first page without it); with ``search``, only those it finds (``_matching``).
    A page starts after the row the previous one ended with, so a transaction
    a sync adds meanwhile is never skipped; a ``start`` past the end (its rows are gone) gives the last page.

    Each page reads at most ``limit + 1`` rows through the (user_id, date) index, wherever it starts; the counts
    are SQL counts, skipped when the page reaches the end (a search reads the user's rows once, as it must).
    """
    limit = max(1, limit)
    order = (col(LedgerTransaction.date).desc(), col(LedgerTransaction.plaid_transaction_id))
    with unit_of_work(c.engine) as session:
        where = _matching(session, user_id, search, sqlite=c.engine.dialect.name == "sqlite")
        page = select(LedgerTransaction).where(*where).order_by(*order).limit(limit + 1)
        rows = [view(t) for t in session.exec(page.where(_after(start)) if start else page).all()]
        before, newer = 0, None
        if start:
            before = _count(session, [*where, _up_to(start)])
            back = (col(LedgerTransaction.date), col(LedgerTransaction.plaid_transaction_id).desc())
            keys = session.exec(  # the rows before this page, nearest first: the newer page, then the row it follows
                select(col(LedgerTransaction.date), col(LedgerTransaction.plaid_transaction_id))
                .where(*where, _up_to(start))
                .order_by(*back)
                .limit(limit + 1)
            ).all()
            newer = (keys[limit][0], keys[limit][1]) if len(keys) > limit else None
        total = before + len(rows) if len(rows) <= limit else _count(session, where)
    if not rows and start and total:  # the rows it started after are gone: the last page there is
        return list_transactions(c, user_id, search=search, start=newer, limit=limit)
    older = (rows[limit - 1].date, rows[limit - 1].transaction_id) if len(rows) > limit else None
    return TransactionPage(rows[:limit], total=total, position=before + 1 if rows else 0, older=older, newer=newer)
