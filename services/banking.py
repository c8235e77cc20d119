"""Linked banks: the service the Accounts page, the Link component and the CLI call.

Every function takes the signed-in user's id and only ever touches that user's items; another
user's item id raises ``NotFound`` exactly like a missing one. Plaid is never called inside an open
write transaction (its call log is written in a unit of work of its own).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlmodel import Session, col

from models import LinkSession, PlaidItem
from services import banking_store as store
from services.banking_link import (
    complete_link,
    complete_repair,
    gateway,
    get_access_token,
    link_exit,
    link_public_token,
    link_sandbox,
    reset_login_sandbox,
    resume_link,
    start_link,
)
from services.banking_views import AccountView, ItemView, LinkStart
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError
from services.plaid_events import calls_for
from services.plaid_types import PlaidError

__all__ = [
    "AccountView",
    "ItemView",
    "LinkStart",
    "complete_link",
    "complete_repair",
    "get_access_token",
    "link_exit",
    "link_public_token",
    "link_sandbox",
    "list_items",
    "remove_all_items",
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


def _revoke_at_plaid(c: Container, user_id: uuid.UUID, item_id: uuid.UUID) -> str | None:
    """Call /item/remove; return None when done (or already gone there), else Plaid's error code."""
    try:
        token = get_access_token(c, user_id, item_id)
    except DecryptionError:
        return "TOKEN_UNREADABLE"
    with calls_for(user_id, item_id):
        try:
            gateway(c).item_remove(token)
        except PlaidError as exc:
            return None if exc.code in ("INVALID_ACCESS_TOKEN", "ITEM_NOT_FOUND") else exc.code
    return None


def _delete(session: Session, item: PlaidItem, *, keep_history: bool, c: Container) -> None:
    """Delete an item; its accounts stay (detached) with ``keep_history``, otherwise they go too."""
    now = c.clock()
    for account in store.accounts_of(session, item.id):
        if keep_history:
            account.item_id, account.disconnected_at = None, now
        else:
            session.delete(account)
    session.execute(delete(LinkSession).where(col(LinkSession.item_id) == item.id))
    session.flush()
    session.delete(item)


def remove_item(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, *, keep_history: bool, ip: str = "") -> None:
    """Revoke the connection at Plaid first, then delete it here (accounts kept detached with ``keep_history``).

    If Plaid does not confirm, the item stays so the user can try again; an unreadable token cannot be
    revoked at all, so that item is deleted here anyway and the audit log says so.
    """
    with unit_of_work(c.engine) as session:
        name = store.owned_item(session, user_id, item_id).institution_name
    failure = _revoke_at_plaid(c, user_id, item_id)
    if failure not in (None, "TOKEN_UNREADABLE"):
        raise FinsyncError(
            f"Plaid did not confirm disconnecting {name} ({failure}), so it is still linked. Try again in a few minutes."
        )
    with unit_of_work(c.engine) as session:
        item = store.owned_item(session, user_id, item_id)
        _delete(session, item, keep_history=keep_history, c=c)
        note = "; token unreadable, not revoked at Plaid" if failure else ""
        store.record(session, event="bank_removed", user_id=user_id, ip=ip,
                     detail=f"{name}; history {'kept' if keep_history else 'deleted'}{note}")  # fmt: skip


def remove_all_items(c: Container, user_id: uuid.UUID, *, ip: str = "") -> None:
    """For account deletion: revoke every item at Plaid (best effort, failures audited), then delete them all."""
    with unit_of_work(c.engine) as session:
        items = [(i.id, i.institution_name, i.plaid_item_id) for i in
                 session.execute(select(PlaidItem).where(col(PlaidItem.user_id) == user_id)).scalars()]  # fmt: skip
    for item_id, name, plaid_item_id in items:
        failure = _revoke_at_plaid(c, user_id, item_id)
        with unit_of_work(c.engine) as session:
            item = session.get(PlaidItem, item_id)
            if item is not None:
                _delete(session, item, keep_history=False, c=c)
            detail = f"{name}; account deletion" + (
                f"; NOT revoked at Plaid ({failure}), Plaid item {plaid_item_id}" if failure else ""
            )
            store.record(session, event="bank_removed", user_id=user_id, ip=ip, detail=detail)
