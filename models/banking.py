"""The tables of linked banks: Plaid items, their accounts, API calls, webhook deliveries and revocations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel

from models.types import fk_column as _fk
from models.types import ts_column as _ts
from models.types import utcnow


def _money() -> Column[int]:
    return Column(BigInteger, nullable=True)


class PlaidItem(SQLModel, table=True):
    """One login at one institution; the access token is encrypted and bound to this row."""

    __tablename__ = "plaid_items"
    __encrypted__: ClassVar[tuple[str, ...]] = ("access_token_enc",)
    __encrypted_owner__: ClassVar[str] = "user_id"  # the user its encrypted columns are bound to

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    plaid_item_id: str = Field(max_length=128, unique=True)
    access_token_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    institution_id: str = Field(max_length=64)
    institution_name: str = Field(max_length=128)
    status: str = Field(default="ok", max_length=32)
    status_code: str | None = Field(default=None, max_length=64)
    # When the status was decided: the iat of the webhook that set it, or the time of a repair or link.
    # An ITEM webhook signed before this is stale news (deliveries arrive out of order). None: no constraint.
    status_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The day the connection stops working (consent expiry or a pending disconnect), as Plaid announced it.
    consent_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # When Plaid told us the bank has accounts not shared yet (NEW_ACCOUNTS_AVAILABLE, sent once): kept apart from
    # the status, which worse news may override, until an update-mode Link with the account picker answers it.
    new_accounts_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    sync_requested_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class BankAccount(SQLModel, table=True):
    """An account at an institution; balances in integer minor units. Kept (detached) when history is kept."""

    __tablename__ = "bank_accounts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    item_id: uuid.UUID | None = Field(
        default=None, sa_column=_fk("plaid_items.id", nullable=True, on_delete="SET NULL")
    )
    plaid_account_id: str = Field(max_length=128, unique=True)
    name: str = Field(max_length=128)
    official_name: str | None = Field(default=None, max_length=256)
    mask: str | None = Field(default=None, max_length=8)
    type: str = Field(max_length=32)
    subtype: str | None = Field(default=None, max_length=64)
    iso_currency_code: str | None = Field(default=None, max_length=3)
    unofficial_currency_code: str | None = Field(default=None, max_length=16)  # crypto and other non-ISO codes
    current_minor: int | None = Field(default=None, sa_column=_money())
    available_minor: int | None = Field(default=None, sa_column=_money())
    limit_minor: int | None = Field(default=None, sa_column=_money())
    institution_name: str = Field(default="", max_length=128)
    balance_updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    disconnected_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Set when a new link took this kept account back; until cleared, syncs match its kept history (services/relink).
    relinked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class LinkSession(SQLModel, table=True):
    """A link token handed to the browser, kept so an OAuth redirect can resume it in a new session."""

    __tablename__ = "link_sessions"
    __encrypted__: ClassVar[tuple[str, ...]] = ("link_token_enc",)
    __encrypted_owner__: ClassVar[str] = "user_id"  # the user its encrypted columns are bound to

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=_fk("users.id"))
    item_id: uuid.UUID | None = Field(default=None, sa_column=_fk("plaid_items.id", nullable=True))
    link_token_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    completed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class PlaidApiEvent(SQLModel, table=True):
    """One call to Plaid: endpoint, request id, duration and error code; never a token."""

    __tablename__ = "plaid_api_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    user_id: uuid.UUID | None = Field(default=None, index=True)
    item_id: uuid.UUID | None = Field(default=None, index=True)
    endpoint: str = Field(max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    duration_ms: int = Field(default=0)
    http_status: int | None = Field(default=None)
    error_code: str | None = Field(default=None, max_length=64)


class WebhookDelivery(SQLModel, table=True):
    """One webhook received: what it said and whether it verified (or why not)."""

    __tablename__ = "webhook_deliveries"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    webhook_type: str | None = Field(default=None, max_length=64)
    webhook_code: str | None = Field(default=None, max_length=64)
    plaid_item_id: str | None = Field(default=None, max_length=128)
    item_id: uuid.UUID | None = Field(default=None)
    verified: bool = Field(default=False)
    outcome: str = Field(default="", max_length=255)
    # sha256 of what Plaid signed for an applied delivery (kid, iat, body hash), not of the JWT's text, which an
    # ECDSA re-encoding changes; unique, so a replay cannot apply twice.
    signature_sha256: str | None = Field(default=None, max_length=64, unique=True)


class PlaidRevocation(SQLModel, table=True):
    """A Plaid connection deleted here that Plaid has not confirmed revoking yet: retried until it does.

    No foreign key to users on purpose (the user may be gone); nothing personal beyond the institution
    name. The access token is encrypted and bound to this row, and wiped once the row is revoked or given
    up; ``last_error`` is a Plaid error code.
    """

    __tablename__ = "plaid_revocations"
    __encrypted__: ClassVar[tuple[str, ...]] = ("access_token_enc",)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    plaid_item_id: str = Field(max_length=128)
    institution_name: str = Field(default="", max_length=128)
    access_token_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # None once done
    reason: str = Field(max_length=32)  # account_deletion | link_discard | bank_removal
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    outcome: str = Field(default="pending", max_length=16, index=True)  # pending | revoked | given_up
