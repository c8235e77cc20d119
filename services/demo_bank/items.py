"""A linked demo item: its institution, accounts, ledger, clock position and state flags."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from services.demo_bank.catalog import ACCOUNT_TEMPLATES, ALL_TEMPLATES, AccountTemplate
from services.demo_bank.faults import Faults
from services.demo_bank.ledger import Ledger, Txn


def utc_now() -> datetime:
    """The time the bank stamps on items and tokens: UTC, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def stable_id(*parts: str, size: int = 37) -> str:
    """Derive a deterministic Plaid-looking id from its parts."""
    return hashlib.blake2b(":".join(parts).encode(), digest_size=32).hexdigest()[:size]


@dataclass
class Item:
    """One linked login at one institution."""

    item_id: str
    access_token: str
    institution_id: str
    seed: str
    accounts: dict[str, str]
    ledger: Ledger
    today: date
    anchor: date
    created_at: datetime
    webhook: str | None = None
    login: str = "user_good"
    ready: bool = True
    error_code: str | None = None
    synced_once: bool = False
    removed: bool = False
    revoked: bool = False  # the user withdrew access (at the bank or my.plaid.com): gone for good
    last_successful_update: datetime | None = None
    last_webhook: tuple[datetime, str] | None = None
    faults: Faults = field(default_factory=Faults)
    offered: list[str] = field(default_factory=list)  # accounts the bank has that the user did not share yet
    hidden: list[str] = field(default_factory=list)  # accounts the user left unticked in Link: never sent
    since: date | None = None  # the oldest day Link asked for (`transactions.days_requested`); None: all there is
    # While set, Plaid's initial pull: only days from this one are sent yet (status INITIAL_UPDATE_COMPLETE).
    pulled_from: date | None = None

    def shows(self, day: date) -> bool:
        """Whether a transaction of this day is within the history this item was linked for (and pulled so far)."""
        return (self.since is None or day >= self.since) and (self.pulled_from is None or day >= self.pulled_from)

    @property
    def update_status(self) -> str:
        """`transactions_update_status` once the item is ready: how much of its history Plaid has pulled."""
        return "INITIAL_UPDATE_COMPLETE" if self.pulled_from is not None else "HISTORICAL_UPDATE_COMPLETE"

    def sends(self, txn: Txn, hidden: frozenset[str]) -> bool:
        """Whether this item ever sends ``txn`` (or its removal): an account it shares (``hidden`` is
        :meth:`hidden_ids`, taken once per pass) and a day within the history it was linked for."""
        return txn.account_id not in hidden and self.shows(txn.date)

    def templates(self) -> list[AccountTemplate]:
        """The shared accounts' templates, in the bank's order."""
        return [t for t in ALL_TEMPLATES if t.key in self.accounts and t.key not in self.hidden]

    def hidden_ids(self) -> frozenset[str]:
        """Account ids the bank keeps (its own history moves money through them) but this item does not show."""
        return frozenset(self.accounts[k] for k in self.hidden if k in self.accounts)

    def share(self, template: AccountTemplate) -> None:
        """Share one more account with this item (update mode with account selection): a new one, or one the user
        had stopped sharing, whose transactions are then sent again."""
        if template.key in self.hidden:
            self.hidden.remove(template.key)
            self.ledger.resend(self.accounts[template.key])
            return
        aid = stable_id(self.item_id, "account", template.key)
        self.accounts[template.key] = aid
        self.ledger.opening[aid] = template.opening_cents
        self.ledger.posted.setdefault(aid, 0)
        self.ledger.pending.setdefault(aid, 0)

    def masks(self) -> dict[str, str]:
        """The last four digits of each account: fixed by institution and login, so relinking shows the same ones."""
        return {aid: mask_of(self.institution_id, self.login, key) for key, aid in self.accounts.items()}


def mask_of(institution_id: str, login: str, key: str) -> str:
    """An account's last four digits, known before any item exists (Link's account picker shows them)."""
    digest = stable_id(institution_id, login, key)
    return str(int(digest[:8], 16) % 10_000).zfill(4)


def new_item(item_id: str, access_token: str, institution_id: str, today: date, now: datetime) -> Item:
    """Build an item with a checking, a savings and a credit-card account and an empty ledger."""
    accounts = {t.key: stable_id(item_id, "account", t.key) for t in ACCOUNT_TEMPLATES}
    opening = {accounts[t.key]: t.opening_cents for t in ACCOUNT_TEMPLATES}
    return Item(
        item_id=item_id,
        access_token=access_token,
        institution_id=institution_id,
        seed=item_id,
        accounts=accounts,
        ledger=Ledger(item_id, opening),
        today=today,
        anchor=today,
        created_at=now,
    )
