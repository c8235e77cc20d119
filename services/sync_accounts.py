"""The item's accounts during a sync: refresh them from /accounts/get, and add ones only a transaction names."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from models import BankAccount, PlaidItem
from services.plaid_types import Account


def upsert_accounts(
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
        row.unofficial_currency_code = a.unofficial_currency_code
        row.current_minor, row.available_minor, row.limit_minor = a.current_minor, a.available_minor, a.limit_minor
        row.institution_name, row.balance_updated_at, row.item_id = item.institution_name, now, item.id
        row.disconnected_at = None  # listed again: shared again
        session.add(row)
    session.flush()
    mine = session.exec(select(BankAccount).where(BankAccount.item_id == item.id)).all()
    mark_unlisted(mine, ids, now)
    return {r.plaid_account_id: r.id for r in mine}


def mark_unlisted(rows: Sequence[BankAccount], listed: Collection[str], now: datetime) -> None:
    """Accounts of the login that the bank no longer lists (the user stopped sharing them in Link, or the bank
    dropped them) keep their history; ``disconnected_at`` says since when their balance is no longer current.

    An account the bank never listed (``placeholder_account``: only its transactions name it) was not shared
    through the list in the first place, so its leaving the list is no news.
    """
    for row in rows:
        listed_once = row.balance_updated_at is not None
        if row.plaid_account_id not in listed and row.disconnected_at is None and listed_once:
            row.disconnected_at = now


def placeholder_account(session: Any, item: PlaidItem, plaid_account_id: str) -> uuid.UUID:
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
