"""The ledger and the sync bot's tables: transactions, their change history, sync state, runs and jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String, Text, Uuid
from sqlmodel import Field, SQLModel

from models.types import fk_column as _fk
from models.types import ts_column as _ts
from models.types import utcnow


class LedgerTransaction(SQLModel, table=True):
    """One transaction as Plaid last described it, plus what the user changed (never overwritten by sync).

    The primary key is Plaid's ``transaction_id`` compared byte for byte (``"AbC"`` and ``"abc"`` differ).
    """

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_user_date", "user_id", "date"),
        # Covers the after-sync balance check (sum of posted amounts per account) without reading rows.
        Index("ix_transactions_account_pending_amount", "account_id", "pending", "amount_minor"),
    )

    plaid_transaction_id: str = Field(sa_column=Column(String(128), primary_key=True))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id", index=False))
    account_id: uuid.UUID = Field(sa_column=_fk("bank_accounts.id", index=False))
    item_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("plaid_items.id", nullable=True, on_delete="SET NULL")
    )
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    iso_currency_code: str | None = Field(default=None, max_length=3)
    unofficial_currency_code: str | None = Field(default=None, max_length=16)
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    authorized_date: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    name: str = Field(max_length=512)
    merchant_name: str | None = Field(default=None, max_length=256)
    pending: bool = Field(default=False)
    pending_transaction_id: str | None = Field(default=None, max_length=128, index=True)
    category_primary: str | None = Field(default=None, max_length=64)
    category_detailed: str | None = Field(default=None, max_length=128)
    payment_channel: str | None = Field(default=None, max_length=32)
    category_override: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=2000)
    tags: str | None = Field(default=None, max_length=1000)
    excluded: bool = Field(default=False)
    user_edited_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    synced_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PendingEdit(SQLModel, table=True):
    """The user's edits of a transaction Plaid removed, kept until its posted twin (or the row itself) comes back."""

    __tablename__ = "pending_edits"

    plaid_transaction_id: str = Field(sa_column=Column(String(128), primary_key=True))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    # The bank it came from, whose removal deletes it (no key: the removal does that itself); NULL before 0017.
    item_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
    category_override: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=2000)
    tags: str | None = Field(default=None, max_length=1000)
    excluded: bool = Field(default=False)
    user_edited_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    removed_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class TransactionChange(SQLModel, table=True):
    """One field Plaid changed on a transaction: old and new value, and the run that saw it."""

    __tablename__ = "transaction_history"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    plaid_transaction_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    run_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    changed_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    field_name: str = Field(max_length=32)
    old_value: str | None = Field(default=None, max_length=512)
    new_value: str | None = Field(default=None, max_length=512)


class ItemSyncState(SQLModel, table=True):
    """Where an item's sync stands: cursor, state, schedule and the lease that makes one sync at a time."""

    __tablename__ = "item_sync_state"

    item_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("plaid_items.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    cursor: str = Field(default="", max_length=512)
    state: str = Field(default="new", max_length=32)
    message: str = Field(default="", max_length=500)
    error_code: str | None = Field(default=None, max_length=64)
    last_success_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_success_started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    next_due_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True, index=True))
    login_required_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    consecutive_failures: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=160)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class SyncRun(SQLModel, table=True):
    """One attempt to sync one item: when, how much, and how it ended (kept with a removed bank's kept history)."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_user_started", "user_id", "started_at"),
        # the scheduler's self-check asks at every tick when each item was last verified: verify runs only
        Index("ix_sync_runs_trigger_item_started", "trigger", "item_id", "started_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # None once its bank is removed with its history kept: the run stays in Sync history under ``institution_name``,
    # which that removal sets (while the bank is linked, its own name is shown: it may change)
    item_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("plaid_items.id", nullable=True, on_delete="SET NULL")
    )
    user_id: uuid.UUID = Field(sa_column=_fk("users.id", index=False))
    institution_name: str = Field(default="", sa_column=Column(String(128), nullable=False, server_default=""))
    trigger: str = Field(default="manual", max_length=16)
    worker: str = Field(default="", max_length=160)
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    status: str = Field(default="running", max_length=24)
    pages: int = Field(default=0)
    restarts: int = Field(default=0)
    retries: int = Field(default=0)
    added: int = Field(default=0)
    modified: int = Field(default=0)
    removed: int = Field(default=0)
    error_code: str | None = Field(default=None, max_length=64)
    message: str = Field(default="", max_length=500)
    request_ids: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class SyncStaged(SQLModel, table=True):
    """A fetched change waiting to be applied; rows of one run vanish when it commits or restarts."""

    __tablename__ = "sync_staging"

    run_id: uuid.UUID = Field(sa_column=Column(Uuid(), primary_key=True))
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: int = Field(default=0)
    plaid_transaction_id: str = Field(max_length=128)
    plaid_account_id: str | None = Field(default=None, max_length=128)
    amount_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    iso_currency_code: str | None = Field(default=None, max_length=3)
    unofficial_currency_code: str | None = Field(default=None, max_length=16)
    date: str | None = Field(default=None, max_length=10)
    authorized_date: str | None = Field(default=None, max_length=10)
    name: str | None = Field(default=None, max_length=512)
    merchant_name: str | None = Field(default=None, max_length=256)
    pending: bool | None = Field(default=None)
    pending_transaction_id: str | None = Field(default=None, max_length=128)
    category_primary: str | None = Field(default=None, max_length=64)
    category_detailed: str | None = Field(default=None, max_length=128)
    payment_channel: str | None = Field(default=None, max_length=32)


class SyncQuarantine(SQLModel, table=True):
    """A transaction the bank sent that could not be read: set aside (with why) instead of stopping the sync.

    It leaves when a later sync brings that transaction readable, or its removal. A posted transaction set
    aside keeps its pending twin in the ledger meanwhile (``pending_transaction_id``); the twin leaves with it.
    """

    __tablename__ = "sync_quarantine"
    __table_args__ = (Index("ux_sync_quarantine_item_txn", "item_id", "plaid_transaction_id", unique=True),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    item_id: uuid.UUID = Field(sa_column=_fk("plaid_items.id", index=False))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    plaid_transaction_id: str = Field(sa_column=Column(String(128), nullable=False))
    kind: str = Field(max_length=16)
    reason: str = Field(max_length=200)
    excerpt: str = Field(sa_column=Column(Text, nullable=False))
    pending_transaction_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    run_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class SyncJob(SQLModel, table=True):
    """A queued sync; workers claim it with a lease, so a killed worker's job is retried after expiry."""

    __tablename__ = "sync_jobs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    item_id: uuid.UUID = Field(sa_column=_fk("plaid_items.id"))
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    reason: str = Field(default="schedule", max_length=16)
    status: str = Field(default="queued", max_length=16, index=True)
    # the item id while queued or running, NULL after: a unique column, so one open job per item.
    open_key: str | None = Field(default=None, max_length=40, unique=True)
    due_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    attempts: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=160)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    outcome: str = Field(default="", max_length=200)


class NotificationPrefs(SQLModel, table=True):
    """What a user wants to hear about by email; thresholds in hundredths of a plain amount, compared in each
    account's own currency units (a threshold of 500.00 means 500 USD, or 500 JPY)."""

    __tablename__ = "notification_prefs"

    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True))
    digest: bool = Field(default=True)
    large_transaction_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    low_balance_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    connection_alerts: bool = Field(default=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class DigestState(SQLModel, table=True):
    """Per user: when the last digest email went out (the next one waits for the hour to pass)."""

    __tablename__ = "digest_state"

    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class DigestItem(SQLModel, table=True):
    """A new transaction waiting for the user's next digest, as the digest shows it (a sync's newest ones).

    ``count``: how many new transactions it stands for (the last row of a sync that brought more than the digest
    lists carries the rest). Rows go with their bank: a bank removed before the digest is not in it.
    """

    __tablename__ = "digest_items"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    item_id: uuid.UUID | None = Field(default=None, sa_column=_fk("plaid_items.id", nullable=True))
    count: int = Field(default=1)
    institution: str = Field(max_length=128)
    date: dt.date = Field(sa_column=Column(Date, nullable=False))
    name: str = Field(max_length=512)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str | None = Field(default=None, max_length=16)
    added_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class AccountCheck(SQLModel, table=True):
    """Per account: balance minus the sum of posted transactions, the drift flag and the low-balance latch."""

    __tablename__ = "account_checks"

    account_id: uuid.UUID = Field(
        sa_column=Column(Uuid(), ForeignKey("bank_accounts.id", ondelete="CASCADE"), primary_key=True)
    )
    drift_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    expected_drift_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    flagged: bool = Field(default=False)
    flagged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    low_balance_alerted: bool = Field(default=False)
    checked_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
