"""Linked banks: the service the Accounts page, the Link component and the CLI call.

Every function takes the signed-in user's id and only ever touches that user's items; another
user's item id raises ``NotFound`` exactly like a missing one. Plaid is never called inside an open
write transaction (its call log is written in a unit of work of its own).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session, col

from models import (
    BankAccount,
    ItemSyncState,
    LedgerTransaction,
    LinkSession,
    PendingEdit,
    PlaidItem,
    SyncRun,
    SyncStaged,
    TransactionChange,
)
from services import banking_store as store
from services import revocations
from services.banking_access import gateway, get_access_token
from services.banking_exchange import link_public_token
from services.banking_link import complete_link, complete_repair, link_exit, resume_link, start_link
from services.banking_sandbox import FIRABLE_WEBHOOKS, fire_webhook_sandbox, link_sandbox, reset_login_sandbox
from services.banking_views import AccountView, ItemView, LinkStart
from services.container import Container
from services.credentials import confirm_identity
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError, KeyMissing
from services.ledger import forget_transactions
from services.plaid_events import calls_for

__all__ = [
    "FIRABLE_WEBHOOKS",
    "AccountView",
    "ItemView",
    "LinkStart",
    "complete_link",
    "complete_repair",
    "fire_webhook_sandbox",
    "get_access_token",
    "link_exit",
    "link_public_token",
    "link_sandbox",
    "list_items",
    "remove_all_items",
    "remove_bank",
    "remove_item",
    "reset_login_sandbox",
    "resume_link",
    "start_link",
]


def list_items(c: Container, user_id: uuid.UUID) -> list[ItemView]:
    """The user's linked banks, oldest first, with their accounts."""
    with unit_of_work(c.engine) as session:
        query = select(PlaidItem).where(col(PlaidItem.user_id) == user_id).order_by(col(PlaidItem.created_at))
        return [store.view(session, item) for item in session.execute(query).scalars()]


def _revoke_at_plaid(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, *, wait_for_key: bool = False) -> str | None:
    """Call /item/remove; return None when done (or already gone there), else Plaid's error code.

    ``wait_for_key``: raise ``KeyMissing`` when the token's key is not in the ring. The operator can put it back,
    whereas deleting the bank now would leave it linked at Plaid with nothing able to revoke it.
    """
    try:
        token = get_access_token(c, user_id, item_id)
    except KeyMissing:
        if wait_for_key:
            raise
        return revocations.UNREADABLE
    except DecryptionError:
        return revocations.UNREADABLE
    with calls_for(user_id, item_id):
        return revocations.remove_at_plaid(gateway(c), token)


def _queue(session: Session, c: Container, item: PlaidItem, failure: str, reason: str) -> str:
    """Keep what revoking the item later needs, in the unit of work that deletes it; return the audit note."""
    token = None if failure == revocations.UNREADABLE else store.decrypt_token(c.cipher, item)
    revocations.enqueue(session, c.cipher, plaid_item_id=item.plaid_item_id, institution=item.institution_name,
                        token=token, reason=reason, error=failure, now=c.clock())  # fmt: skip
    if token is None:
        return f"; token unreadable, NOT revoked at Plaid: remove Plaid item {item.plaid_item_id} by hand"
    return f"; Plaid did not confirm revoking ({failure}), queued for retry; Plaid item {item.plaid_item_id}"


def _wait_for_its_sync(session: Session, item_id: uuid.UUID) -> None:
    """Lock the item's sync state first: a sync writing to this bank (its transaction holds that row) finishes, and
    what it wrote (a new account above all) is then seen and removed with the rest, not left behind detached."""
    session.execute(select(col(ItemSyncState.item_id)).where(col(ItemSyncState.item_id) == item_id).with_for_update())


def _delete(session: Session, item: PlaidItem, *, keep_history: bool, c: Container) -> None:
    """Delete an item; its accounts and finished sync runs stay (detached) with ``keep_history``, else they go too.

    A run still under way goes either way: it can no longer finish, and would read "running" for ever.
    """
    now = c.clock()
    _forget_private(session, item, keep_history=keep_history)
    for account in store.accounts_of(session, item.id):
        if keep_history:
            account.item_id, account.disconnected_at = None, now
        else:
            session.delete(account)
    its_runs = col(SyncRun.item_id) == item.id
    # What a sync killed mid-fetch staged (no user id there for a cascade to follow): its run can no longer finish.
    session.execute(delete(SyncStaged).where(col(SyncStaged.run_id).in_(select(col(SyncRun.id)).where(its_runs))))
    if keep_history:  # finished runs take the bank's name now; deleting the item then unlinks them (SET NULL)
        session.execute(delete(SyncRun).where(its_runs, col(SyncRun.status) == "running"))
        session.execute(update(SyncRun).where(its_runs).values(institution_name=item.institution_name))
    else:
        session.execute(delete(SyncRun).where(its_runs))
    session.execute(delete(LinkSession).where(col(LinkSession.item_id) == item.id))
    session.flush()
    session.delete(item)


def _forget_private(session: Session, item: PlaidItem, *, keep_history: bool) -> None:
    """Delete what the user wrote or Plaid changed that no kept row shows any more: the saved edits of the bank's
    dropped holds and removed transactions (with their change history) and, unless its history is kept, its
    transactions' change history.

    Saved edits from before they named their bank (NULL) go once the user has no bank left to post them.
    """
    t, p = LedgerTransaction, PendingEdit
    mine = col(p.item_id) == item.id
    others = select(col(PlaidItem.id)).where(col(PlaidItem.user_id) == item.user_id, col(PlaidItem.id) != item.id)
    if session.execute(others.limit(1)).first() is None:
        mine = or_(mine, col(p.item_id).is_(None))
    saved = select(col(p.plaid_transaction_id)).where(col(p.user_id) == item.user_id, mine)
    h = TransactionChange
    session.execute(delete(h).where(col(h.user_id) == item.user_id, col(h.plaid_transaction_id).in_(saved)))
    session.execute(delete(p).where(col(p.user_id) == item.user_id, mine))
    if not keep_history:
        accounts = select(col(BankAccount.id)).where(col(BankAccount.item_id) == item.id)
        rows = select(col(t.plaid_transaction_id)).where(
            col(t.user_id) == item.user_id, or_(col(t.item_id) == item.id, col(t.account_id).in_(accounts))
        )
        forget_transactions(session, item.user_id, rows)


def remove_item(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, *, keep_history: bool, ip: str = "") -> None:
    """Revoke the connection at Plaid first, then delete it here (accounts kept detached with ``keep_history``).

    If Plaid does not confirm, the item stays so the user can try again; an unreadable token cannot be
    revoked at all, so that item is deleted here anyway, listed for admins as a given-up revocation.
    """
    with unit_of_work(c.engine) as session:
        name = store.owned_item(session, user_id, item_id).institution_name
    failure = _revoke_at_plaid(c, user_id, item_id, wait_for_key=True)
    if failure not in (None, revocations.UNREADABLE):
        raise FinsyncError(
            f"Plaid did not confirm disconnecting {name} ({failure}), so it is still linked. Try again in a few minutes."
        )
    with unit_of_work(c.engine, immediate=True) as session:  # SQLite: waits its turn rather than fail as locked
        _wait_for_its_sync(session, item_id)
        item = store.owned_item(session, user_id, item_id)
        note = _queue(session, c, item, failure, revocations.BANK_REMOVAL) if failure else ""
        _delete(session, item, keep_history=keep_history, c=c)
        store.record(session, event="bank_removed", user_id=user_id, ip=ip,
                     detail=f"{name}; history {'kept' if keep_history else 'deleted'}{note}")  # fmt: skip


def remove_bank(
    c: Container,
    user_id: uuid.UUID,
    item_id: uuid.UUID,
    *,
    keep_history: bool,
    password: str,
    code: str | None = None,
    ip: str = "",
) -> None:
    """``remove_item`` for the Accounts page, after the owner proves it is them (password, and code with 2FA)."""
    confirm_identity(c, user_id, action="bank removal", password=password, code=code, ip=ip)
    remove_item(c, user_id, item_id, keep_history=keep_history, ip=ip)


def remove_all_items(c: Container, user_id: uuid.UUID, *, ip: str = "") -> None:
    """For account deletion: revoke every item at Plaid, queueing what Plaid does not confirm, then delete them all."""
    with unit_of_work(c.engine) as session:
        items = [(i.id, i.institution_name) for i in
                 session.execute(select(PlaidItem).where(col(PlaidItem.user_id) == user_id)).scalars()]  # fmt: skip
    for item_id, name in items:
        failure = _revoke_at_plaid(c, user_id, item_id)
        with unit_of_work(c.engine, immediate=True) as session:
            _wait_for_its_sync(session, item_id)
            item = session.get(PlaidItem, item_id)
            note = ""
            if item is not None:
                note = _queue(session, c, item, failure, revocations.ACCOUNT_DELETION) if failure else ""
                _delete(session, item, keep_history=False, c=c)
            store.record(
                session, event="bank_removed", user_id=user_id, ip=ip, detail=f"{name}; account deletion{note}"
            )
