"""The history a person kept when they removed a bank: listed on Accounts, and deleted when they no longer want it.

Removing a bank "keeping history" detaches its accounts (``item_id`` NULL, ``disconnected_at`` set) and leaves
their transactions in the ledger. Linking the same login again takes such an account back (services/relink.py);
until then it is listed here with its last balance, and its owner may delete it, transactions and all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, delete, func
from sqlalchemy import select as columns  # SQLAlchemy's own: sqlmodel's select takes at most four columns
from sqlmodel import Session, col, select

from models import BankAccount, LedgerTransaction, SyncRun
from services import audit
from services.container import Container
from services.credentials import confirm_identity
from services.db import unit_of_work
from services.errors import InputError, NotFound, NotYours
from services.ledger import account_label, forget_transactions

NO_SUCH_HISTORY = "That kept history does not exist (it may have been deleted, or its bank linked again)."


@dataclass(frozen=True)
class KeptAccount:
    """An account of a removed bank, as it was when the bank was removed."""

    id: uuid.UUID
    institution_name: str
    name: str
    mask: str | None
    type: str  # the bank's subtype where it gave one ("checking", "credit card"), else its type
    current_minor: int | None  # the last balance the bank gave: not today's
    currency: str | None
    removed_at: datetime | None
    transactions: int
    first: date | None
    last: date | None
    pending: int  # still pending when the bank went: no bank is left to say they posted

    @property
    def label(self) -> str:
        return kept_label(self.institution_name, self.name, self.mask)


def kept_label(institution_name: str, name: str, mask: str | None) -> str:
    """A kept account named with its bank, since its bank is no longer on the page to say it."""
    return f"{institution_name}: {account_label(name, mask)}"


def kept_accounts(c: Container, user_id: uuid.UUID) -> list[KeptAccount]:
    """The user's kept accounts, by bank and name, with how many transactions each holds (and how many of them were
    still pending), over which dates.

    Only the kept accounts' rows are counted (through the account index): Accounts calls this on every visit,
    and a long ledger of linked banks must not be read for it."""
    t = LedgerTransaction
    with unit_of_work(c.engine) as session:
        accounts = session.exec(
            select(BankAccount)
            .where(col(BankAccount.user_id) == user_id, col(BankAccount.item_id).is_(None))
            .order_by(col(BankAccount.institution_name), col(BankAccount.name), col(BankAccount.id))
        ).all()
        if not accounts:
            return []
        stats = {
            row[0]: row[1:]
            for row in session.execute(
                columns(
                    col(t.account_id),
                    func.count(),
                    func.min(col(t.date)),
                    func.max(col(t.date)),
                    func.sum(case((col(t.pending), 1), else_=0)),  # a group has rows: never NULL
                )
                .where(col(t.account_id).in_([a.id for a in accounts]))
                .group_by(col(t.account_id))
            )
        }
    kept = []
    for a in accounts:
        n, first, last, pending = stats.get(a.id, (0, None, None, 0))
        kept.append(
            KeptAccount(a.id, a.institution_name, a.name, a.mask, a.subtype or a.type, a.current_minor,
                        a.iso_currency_code or a.unofficial_currency_code, a.disconnected_at, n, first, last,
                        int(pending))
        )  # fmt: skip
    return kept


def _owned_kept(session: Session, user_id: uuid.UUID, account_id: uuid.UUID) -> BankAccount:
    account = session.get(BankAccount, account_id, with_for_update=True) if isinstance(account_id, uuid.UUID) else None
    if account is None or account.item_id is not None:
        raise NotFound(NO_SUCH_HISTORY)  # a linked account's history goes with its bank, on Accounts
    if account.user_id != user_id:
        raise NotYours(NO_SUCH_HISTORY, user_id=user_id, what=f"kept account {account_id}")
    return account


def delete_kept(
    c: Container,
    user_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID],
    *,
    password: str,
    code: str | None = None,
    ip: str = "",
) -> int:
    """Delete kept accounts with their transactions and those transactions' change history (and, with a bank's last
    kept account, its sync runs), once the owner proves it is them: all of them or, when one is not theirs or no
    longer kept, none. Returns how many transactions went."""
    chosen = list(dict.fromkeys(account_ids)) if isinstance(account_ids, (list, tuple)) else []
    if not chosen:
        raise InputError("Choose the accounts whose kept history to delete.")
    confirm_identity(c, user_id, action="kept history deletion", password=password, code=code, ip=ip)
    total = 0
    with unit_of_work(c.engine, immediate=True) as session:
        for account_id in chosen:
            account = _owned_kept(session, user_id, account_id)
            ids = select(col(LedgerTransaction.plaid_transaction_id)).where(
                col(LedgerTransaction.user_id) == user_id, col(LedgerTransaction.account_id) == account.id
            )
            count = forget_transactions(session, user_id, ids)
            name = kept_label(account.institution_name, account.name, account.mask)
            session.delete(account)
            audit.record(session, event="kept_history_deleted", user_id=user_id, ip=ip,
                         detail=f"{name}; {count} transaction(s)", at=c.clock())  # fmt: skip
            total += count
        session.flush()
        _forget_runs(session, user_id)
    return total


def _forget_runs(session: Session, user_id: uuid.UUID) -> None:
    """Delete the sync runs of removed banks none of whose kept accounts is left (the runs know only the bank's name,
    which its accounts share: two removals of one bank keep their runs until the last of their accounts goes)."""
    named = select(col(BankAccount.institution_name)).where(
        col(BankAccount.user_id) == user_id, col(BankAccount.item_id).is_(None)
    )
    session.execute(
        delete(SyncRun).where(
            col(SyncRun.user_id) == user_id,
            col(SyncRun.item_id).is_(None),
            col(SyncRun.institution_name).not_in(named),
        )
    )
