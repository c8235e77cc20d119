"""After-sync account checks: balance against the sum of transactions (drift), and low balances."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, case, false, func
from sqlmodel import Session, col, select

from models import AccountCheck, LedgerTransaction, PlaidItem
from services.plaid_mapping import in_units, threshold_units
from services.plaid_types import Account

# For these account types Plaid's `current` is what is owed, so the statement balance is its negative.
_OWED = ("credit", "loan")
# For these the balance is a market value: /transactions/sync sends none of their transactions (PLAID_NOTES §3),
# so no sum of transactions explains it and its moving says nothing about the ledger.
_NOT_TRANSACTIONS = ("investment", "brokerage")


@dataclass(frozen=True)
class LowBalance:
    """An account whose balance just fell below the user's threshold."""

    name: str
    balance_minor: int
    iso_currency_code: str | None


def statement_balance(account: Account) -> int | None:
    """The balance with the statement sign (money owed is negative)."""
    if account.current_minor is None:
        return None
    return -account.current_minor if account.type in _OWED else account.current_minor


def drift(balance: int, posted_sum: int) -> int:
    """What the balance has that the posted transactions do not explain (the opening balance, ideally constant)."""
    return balance - posted_sum


def check_accounts(
    session: Session,
    item: PlaidItem,
    accounts: tuple[Account, ...],
    amap: dict[str, uuid.UUID],
    now: datetime,
    low_threshold: int | None = None,
    history_before: date | None = None,
) -> list[LowBalance]:
    """Update each account's drift flag: set while drift differs from the last unflagged sync's; return newly low balances.

    ``history_before`` is the day of the item's oldest transaction before this sync: posted rows of the item dated
    before it are the bank's older history arriving (Plaid sends the last 30 days first, the rest in a later sync).
    They were already in the balance, so they move the expected drift with them instead of raising the flag.
    """
    ids = [amap[a.account_id] for a in accounts if a.account_id in amap and a.type not in _NOT_TRANSACTIONS]
    sums, history = _posted_sums(session, item, ids, history_before)
    low: list[LowBalance] = []
    for a in accounts:
        account_id = amap.get(a.account_id)
        balance = statement_balance(a)
        if account_id is None or balance is None:
            continue
        value = drift(balance, sums.get(account_id, 0))
        check = _drift_check(session, account_id, value, history.get(account_id, 0), account_id in ids, now)
        available = a.available_minor if a.available_minor is not None else a.current_minor
        currency = a.iso_currency_code or a.unofficial_currency_code
        is_low = (  # compared in the account's own currency units: a threshold of 100 is 100 USD, or 100 JPY
            low_threshold is not None
            and a.type not in _OWED
            and available is not None
            and in_units(available, currency) < threshold_units(low_threshold)
        )
        if is_low and not check.low_balance_alerted:
            low.append(LowBalance(a.name, available or 0, currency))
        check.low_balance_alerted = is_low
        session.add(check)
    return low


def _drift_check(
    session: Session, account_id: uuid.UUID, value: int, history: int, explained: bool, now: datetime
) -> AccountCheck:
    """The account's check with this sync's drift: flagged while it differs from the last unflagged sync's (shifted by
    the older history that arrived), unless transactions never explain the balance (``explained`` False)."""
    check = session.get(AccountCheck, account_id)
    if check is None:
        check = AccountCheck(account_id=account_id, drift_minor=value, expected_drift_minor=value)
    else:
        check.expected_drift_minor -= history
    check.drift_minor, check.checked_at = value, now
    if explained and value != check.expected_drift_minor:  # the transactions no longer explain the balance as they did
        if not check.flagged:
            check.flagged, check.flagged_at = True, now
    else:
        check.flagged, check.flagged_at, check.expected_drift_minor = False, None, value
    return check


def _posted_sums(
    session: Session, item: PlaidItem, ids: list[uuid.UUID], history_before: date | None
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    """Per account: the sum of its posted transactions, and the part of it that is the item's history older than
    ``history_before`` (none when not given)."""
    if not ids:
        return {}, {}
    t = LedgerTransaction
    older = and_(col(t.item_id) == item.id, col(t.date) < history_before) if history_before is not None else false()
    q = (
        select(t.account_id, func.sum(t.amount_minor), func.sum(case((older, t.amount_minor), else_=0)))
        .where(col(t.account_id).in_(ids), col(t.pending).is_(False))
        .group_by(col(t.account_id))
    )
    rows = session.exec(q).all()
    return {a: int(s or 0) for a, s, _ in rows}, {a: int(h or 0) for a, _, h in rows}
