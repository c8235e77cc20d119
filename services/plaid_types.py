"""Plaid-facing shapes without the SDK: frozen dataclasses in and out of the gateway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple


@dataclass(frozen=True)
class CallEvent:
    """One Plaid call for the audit table; never carries a token."""

    endpoint: str
    request_id: str | None
    duration_ms: int
    error_code: str | None
    http_status: int | None


@dataclass(frozen=True)
class LinkToken:
    """A Link token for the browser."""

    link_token: str = field(repr=False)
    expiration: datetime
    request_id: str


@dataclass(frozen=True)
class ItemAccess:
    """The result of a public-token exchange; the access token is hidden from repr."""

    item_id: str
    access_token: str = field(repr=False)
    request_id: str


@dataclass(frozen=True)
class Account:
    """An account with balances in minor units (Plaid's balance meaning, not the statement sign)."""

    account_id: str
    name: str
    official_name: str | None
    mask: str | None
    type: str
    subtype: str | None
    current_minor: int | None
    available_minor: int | None
    limit_minor: int | None
    iso_currency_code: str | None
    unofficial_currency_code: str | None = None  # Plaid's code for a non-ISO currency (crypto), when iso is null


@dataclass(frozen=True)
class ItemInfo:
    """An item's identity, webhook and error state."""

    item_id: str
    institution_id: str | None
    institution_name: str | None
    webhook: str | None
    error_code: str | None
    update_type: str | None
    last_successful_update: datetime | None = None
    last_failed_update: datetime | None = None


@dataclass(frozen=True)
class AccountsResult:
    """Accounts of one item, plus the item."""

    accounts: tuple[Account, ...]
    item: ItemInfo
    request_id: str


class Transaction(NamedTuple):
    """A transaction normalised once: statement-signed minor units, real dates, open category strings.

    A named tuple rather than a frozen dataclass: a first sync builds hundreds of thousands of them,
    and a tuple is built about five times faster. It is just as immutable.
    """

    transaction_id: str
    account_id: str
    amount_minor: int
    iso_currency_code: str | None
    unofficial_currency_code: str | None
    date: dt.date
    authorized_date: dt.date | None
    name: str
    merchant_name: str | None
    pending: bool
    pending_transaction_id: str | None
    category_primary: str | None
    category_detailed: str | None
    category_confidence: str | None
    payment_channel: str | None
    website: str | None


@dataclass(frozen=True)
class Unreadable:
    """A transaction of a sync page that could not be mapped (its amount is not money, a field is missing...)."""

    transaction_id: str
    kind: str  # "added" or "modified"
    reason: str
    excerpt: str  # the start of its JSON, for the operator


@dataclass(frozen=True)
class SyncPage:
    """One /transactions/sync page; ``unreadable`` holds the transactions that could not be mapped."""

    added: tuple[Transaction, ...]
    modified: tuple[Transaction, ...]
    removed: tuple[str, ...]
    accounts: tuple[Account, ...]
    next_cursor: str = field(repr=False)
    has_more: bool
    update_status: str
    request_id: str
    unreadable: tuple[Unreadable, ...] = ()


@dataclass(frozen=True)
class RecurringStream:
    """A recurring inflow or outflow stream; amounts statement-signed like transactions."""

    stream_id: str
    account_id: str
    description: str
    merchant_name: str | None
    frequency: str
    status: str
    is_active: bool
    first_date: date | None
    last_date: date | None
    predicted_next_date: date | None
    average_amount_minor: int | None
    last_amount_minor: int | None
    iso_currency_code: str | None
    category_primary: str | None
    category_detailed: str | None
    transaction_ids: tuple[str, ...]


@dataclass(frozen=True)
class RecurringResult:
    """Recurring streams of one item."""

    inflow: tuple[RecurringStream, ...]
    outflow: tuple[RecurringStream, ...]
    updated_datetime: datetime | None
    request_id: str


@dataclass(frozen=True)
class Institution:
    """An institution's display data."""

    institution_id: str
    name: str
    url: str | None
    primary_color: str | None
    logo: str | None
    country_codes: tuple[str, ...]
    products: tuple[str, ...]
    oauth: bool


@dataclass(frozen=True)
class WebhookKey:
    """A webhook verification JWK; `jwk()` gives the dict PyJWT's `PyJWK` takes."""

    kid: str
    alg: str
    crv: str
    kty: str
    use: str
    x: str
    y: str
    created_at: int
    expired_at: int | None

    def jwk(self) -> dict[str, str]:
        """The key material as a JWK dict."""
        return {
            "kid": self.kid,
            "alg": self.alg,
            "crv": self.crv,
            "kty": self.kty,
            "use": self.use,
            "x": self.x,
            "y": self.y,
        }


Recorder = Callable[[CallEvent], None]
