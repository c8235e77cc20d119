"""Session helpers for linked banks (they never commit): ownership, token encryption, rows to views."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from models import BankAccount, LinkSession, PlaidItem, User
from services import audit
from services.banking_views import AccountView, ItemView, needs_repair, status_message
from services.crypto import FieldCipher
from services.errors import NotFound, NotYours, PermissionDenied
from services.plaid_types import Account, ItemAccess
from services.relink import reattach_kept
from services.sync_accounts import mark_unlisted

log = logging.getLogger("finsync.banking")
TOKEN_TABLE, TOKEN_COLUMN = "plaid_items", "access_token_enc"
LINK_TABLE, LINK_COLUMN = "link_sessions", "link_token_enc"
NO_SUCH_ITEM = "There is no such bank connection."


def record(session: Session, *, event: str, user_id: uuid.UUID | None, ip: str = "", detail: str = "") -> None:
    """Audit a bank event (never a token: details are institution names and error codes)."""
    audit.record(session, event=event, user_id=user_id, ip=ip, detail=detail)


def require_verified(session: Session, user_id: uuid.UUID) -> User:
    """The user, who must have verified their email address before linking a bank."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such user.")
    if not user.email_verified:
        raise PermissionDenied("Verify your email address before linking a bank.")
    return user


def owned_item(session: Session, user_id: uuid.UUID, item_id: uuid.UUID) -> PlaidItem:
    """The item if it belongs to this user; someone else's item is as missing as a missing one."""
    item = session.get(PlaidItem, item_id)
    if item is None:
        raise NotFound(NO_SUCH_ITEM)
    if item.user_id != user_id:
        raise NotYours(NO_SUCH_ITEM, user_id=user_id, what=f"bank connection {item_id}")
    return item


def owned_link(session: Session, user_id: uuid.UUID, link_session_id: uuid.UUID, unknown: str) -> LinkSession:
    """The Link session if it is this user's; ``unknown`` is said for a missing one and someone else's alike."""
    link = session.get(LinkSession, link_session_id) if isinstance(link_session_id, uuid.UUID) else None
    if link is None:
        raise NotFound(unknown)
    if link.user_id != user_id:
        raise NotYours(unknown, user_id=user_id, what=f"bank linking session {link_session_id}")
    return link


def encrypt_token(cipher: FieldCipher, item_id: uuid.UUID, user_id: uuid.UUID, token: str) -> bytes:
    return cipher.encrypt(token, table=TOKEN_TABLE, column=TOKEN_COLUMN, row_id=item_id, owner=user_id)


def decrypt_token(cipher: FieldCipher, item: PlaidItem) -> str:
    """The item's access token; ``DecryptionError`` if it was moved, altered, handed to another user or its key is gone."""
    return cipher.decrypt_text(item.access_token_enc, table=TOKEN_TABLE, column=TOKEN_COLUMN, row_id=item.id,
                               owner=item.user_id)  # fmt: skip


def accounts_of(session: Session, item_id: uuid.UUID) -> list[BankAccount]:
    query = select(BankAccount).where(col(BankAccount.item_id) == item_id).order_by(col(BankAccount.name))
    return list(session.execute(query).scalars())


def _known(pairs: Iterable[tuple[str | None, str]]) -> set[tuple[str, str]]:
    return {(mask or "", name.strip().casefold()) for mask, name in pairs}


def find_duplicate(
    session: Session, user_id: uuid.UUID, institution_id: str, accounts: Iterable[Account]
) -> PlaidItem | None:
    """An item of this user at the same institution sharing an account (same mask and name) with ``accounts``.

    One shared account is enough: linking a subset of a login's accounts again would still count that
    account's transactions twice. Without masks to tell accounts apart, only an identical set counts.
    """
    wanted = _known((a.mask, a.name) for a in accounts)
    masked = {pair for pair in wanted if pair[0]}
    query = select(PlaidItem).where(col(PlaidItem.user_id) == user_id, col(PlaidItem.institution_id) == institution_id)
    for item in session.execute(query).scalars():
        have = _known((a.mask, a.name) for a in accounts_of(session, item.id))
        if masked & have or have == wanted:
            found: PlaidItem = item
            return found
    return None


def has_unshared(session: Session, item_id: uuid.UUID) -> bool:
    """Whether the bank stopped listing one of the item's accounts (the user unticked it in Link)."""
    unlisted = select(col(BankAccount.id)).where(
        col(BankAccount.item_id) == item_id, col(BankAccount.disconnected_at).is_not(None)
    )
    return session.execute(unlisted.limit(1)).first() is not None


def upsert_accounts(session: Session, item: PlaidItem, accounts: Iterable[Account], now: datetime) -> None:
    """Add new accounts of an item and refresh balances of known ones (by Plaid's account id)."""
    known = {a.plaid_account_id: a for a in accounts_of(session, item.id)}
    accounts = list(accounts)
    listed = {acc.account_id for acc in accounts}
    for acc in accounts:
        row = known.get(acc.account_id)
        if row is None:
            row = BankAccount(user_id=item.user_id, item_id=item.id, plaid_account_id=acc.account_id, name="", type="")
            session.add(row)
        row.name, row.official_name, row.mask = acc.name[:128], acc.official_name, acc.mask
        row.type, row.subtype, row.iso_currency_code = acc.type, acc.subtype, acc.iso_currency_code
        row.unofficial_currency_code = acc.unofficial_currency_code
        row.current_minor, row.available_minor, row.limit_minor = (
            acc.current_minor,
            acc.available_minor,
            acc.limit_minor,
        )
        row.institution_name = item.institution_name
        row.balance_updated_at, row.disconnected_at = now, None
    mark_unlisted(list(known.values()), listed, now)


def store_item(
    session: Session,
    cipher: FieldCipher,
    *,
    row_id: uuid.UUID,
    user_id: uuid.UUID,
    access: ItemAccess,
    institution: tuple[str, str],
    accounts: Iterable[Account],
    now: datetime,
) -> tuple[PlaidItem, int]:
    """Add the item (token encrypted and bound to its row) and its accounts with balances.

    Returns the item and how many kept accounts (removed earlier with their history) it took back.
    """
    item = PlaidItem(
        id=row_id,
        user_id=user_id,
        plaid_item_id=access.item_id,
        access_token_enc=encrypt_token(cipher, row_id, user_id, access.access_token),
        institution_id=institution[0][:64],
        institution_name=institution[1][:128],
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    session.flush()
    accounts = list(accounts)
    taken = reattach_kept(session, item, accounts, now)  # the same login linked again after "keep history"
    upsert_accounts(session, item, accounts, now)
    return item, taken


def set_status(item: PlaidItem, status: str, code: str | None, now: datetime) -> None:
    """Decide the item's state now: an ITEM webhook signed before this is older news and stale."""
    item.status, item.status_code, item.updated_at, item.status_since = status, code, now, now


def view(session: Session, item: PlaidItem) -> ItemView:
    """An item and its accounts as the page shows them."""
    accounts = [
        AccountView(
            id=a.id,
            name=a.name,
            official_name=a.official_name,
            mask=a.mask,
            type=a.type,
            subtype=a.subtype,
            currency=a.iso_currency_code or a.unofficial_currency_code,
            current_minor=a.current_minor,
            available_minor=a.available_minor,
            limit_minor=a.limit_minor,
            balance_updated_at=a.balance_updated_at,
            unshared_since=a.disconnected_at,
        )
        for a in accounts_of(session, item.id)
    ]
    return ItemView(
        id=item.id,
        institution_id=item.institution_id,
        institution_name=item.institution_name,
        status=item.status,
        status_code=item.status_code,
        status_message=status_message(item.status, item.status_code, item.consent_expires_at),
        consent_expires_at=item.consent_expires_at,
        needs_repair=needs_repair(item.status),
        created_at=item.created_at,
        accounts=accounts,
    )
