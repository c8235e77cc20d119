"""After-sync account checks: balance against the sum of transactions (drift), and low balances."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from models import AccountCheck, LedgerTransaction, PlaidItem, SyncStaged
from services.money import in_units, threshold_units
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
    available: bool = True  # the bank's available balance (what Accounts shows as Available), else its current one


@dataclass(frozen=True)
class OlderHistory:
    """The item's oldest day as a sync began, and per account the posted sum of rows older than it (kept ones of a
    bank linked again): what that sum gains in the sync is the bank's older history arriving."""

    before: date
    sums: dict[uuid.UUID, int]
    # The item's rows that the sync changes (all dated on or after ``before`` as it began): one the bank re-dates
    # below that day was in the sums already, so it is no history arriving.
    touched: frozenset[str] = frozenset()


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
    older: OlderHistory | None = None,
) -> list[LowBalance]:
    """Update each account's drift flag: set while drift differs from the last unflagged sync's; return newly low balances.

    ``older`` (taken as the sync began): posted rows dated before the item's oldest one that the sync brought are the
    bank's older history arriving (Plaid sends the last 30 days first, the rest in a later sync). They were in the
    balance all along, so they move the expected drift with them instead of raising the flag.
    """
    ids = [amap[a.account_id] for a in accounts if a.account_id in amap and a.type not in _NOT_TRANSACTIONS]
    sums = _posted_sums(session, ids)
    history: dict[uuid.UUID, int] = {}
    if older is not None:
        after = _older_sums(session, item.user_id, ids, older.before)
        moved = _moved_sums(session, older, ids)
        history = {a: after.get(a, 0) - older.sums.get(a, 0) - moved.get(a, 0) for a in ids}
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
            and a.type == "depository"  # money about to run out: not a debt, nor a market's move
            and available is not None
            and in_units(available, currency) < threshold_units(low_threshold)
        )
        if is_low and not check.low_balance_alerted:
            low.append(LowBalance(a.name, available or 0, currency, a.available_minor is not None))
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


def older_history(
    session: Session, item: PlaidItem, account_ids: Iterable[uuid.UUID], before: date | None, run_id: uuid.UUID
) -> OlderHistory | None:
    """Taken before a sync applies its rows (None before the item has any: its first rows are its baseline)."""
    if before is None:
        return None
    t, s = LedgerTransaction, SyncStaged
    # From the run's staged rows to the ledger by its key: "user's rows whose id is staged" read every row of the
    # user (by user and date) on SQLite, seconds on a million-row ledger for a sync of a hundred changes.
    q = (
        select(t.plaid_transaction_id)
        .select_from(s)
        .join(t, col(t.plaid_transaction_id) == col(s.plaid_transaction_id))
        .where(col(s.run_id) == run_id, col(t.user_id) == item.user_id, col(t.item_id) == item.id)
    )
    touched = frozenset(session.exec(q).all())
    return OlderHistory(before, _older_sums(session, item.user_id, list(account_ids), before), touched)


def _moved_sums(session: Session, older: OlderHistory, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Per account, the posted sum of the rows the sync changed that it re-dated before ``older.before``."""
    t, sums, wanted = LedgerTransaction, dict[uuid.UUID, int](), set(ids)
    touched = sorted(older.touched)
    for start in range(0, len(touched) if ids else 0, 500):  # few: the rows a bank re-dates; bound the parameters
        # By the key alone, the accounts sorted out here: with account_id in the query SQLite took the account index
        # and read every row of the account (seconds on a million-row ledger, for a sync of a hundred changes).
        q = select(t.account_id, t.amount_minor).where(
            col(t.plaid_transaction_id).in_(touched[start : start + 500]),
            col(t.date) < older.before,
            col(t.pending).is_(False),
        )
        for a, amount in session.exec(q).all():
            if a in wanted:
                sums[a] = sums.get(a, 0) + amount
    return sums


def _posted_sums(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Per account, the sum of its posted transactions."""
    if not ids:
        return {}
    t = LedgerTransaction
    q = (
        select(t.account_id, func.sum(t.amount_minor))
        .where(col(t.account_id).in_(ids), col(t.pending).is_(False))
        .group_by(col(t.account_id))
    )
    return {a: int(v or 0) for a, v in session.exec(q).all()}


def _older_sums(session: Session, user_id: uuid.UUID, ids: list[uuid.UUID], before: date) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    t = LedgerTransaction
    q = (
        select(t.account_id, func.sum(t.amount_minor))
        .where(col(t.user_id) == user_id, col(t.date) < before)  # few rows: by (user_id, date)
        .where(col(t.account_id).in_(ids), col(t.pending).is_(False))
        .group_by(col(t.account_id))
    )
    return {a: int(v or 0) for a, v in session.exec(q).all()}
