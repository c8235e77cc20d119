"""The Plaid gateway: the only module that imports `plaid`; our frozen dataclasses in and out.

Errors, rooted at ``services.errors.FinsyncError``::

    PlaidError                       any Plaid failure; ``code``, ``request_id``, ``display_message``
    ├── LoginRequired                ITEM_LOGIN_REQUIRED: send the user through Link update mode
    ├── RateLimited                  error_type RATE_LIMIT_EXCEEDED (HTTP 429): back off
    ├── InstitutionDown              INSTITUTION_DOWN / INSTITUTION_NOT_RESPONDING: retry later
    ├── InvalidRequest               INVALID_REQUEST / INVALID_INPUT (bad keys, token, field)
    ├── MutationDuringPagination     restart the sync loop from its starting cursor
    └── Transient                    5xx, network failure or garbled response: retry later

Money leaves this module as integer minor units with the statement sign (money out is negative);
balances keep Plaid's meaning (for credit accounts `current` is the amount owed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

import plaid
import urllib3
from plaid.api import plaid_api
from plaid.model.accounts_balance_get_request import AccountsBalanceGetRequest
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.country_code import CountryCode
from plaid.model.institutions_get_by_id_request import InstitutionsGetByIdRequest
from plaid.model.item_get_request import ItemGetRequest
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.item_remove_request import ItemRemoveRequest
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.products import Products
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.sandbox_public_token_create_request_options import SandboxPublicTokenCreateRequestOptions
from plaid.model.transactions_recurring_get_request import TransactionsRecurringGetRequest
from plaid.model.transactions_refresh_request import TransactionsRefreshRequest
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest

from services.errors import FinsyncError

PLAID_VERSION = "2020-09-14"
Environment = Literal["demo", "sandbox", "production"]
Json = Mapping[str, Any]
_HOSTS = {"sandbox": plaid.Environment.Sandbox, "production": plaid.Environment.Production}
# ISO 4217 minor-unit exponents that are not 2; https://www.six-group.com/en/products-services/financial-information/data-standards.html
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}

# -- errors ------------------------------------------------------------------------------------------


class PlaidError(FinsyncError):
    """Plaid refused or failed a call; `code` is Plaid's error_code, never a token."""

    default_message = "The bank connection service reported a problem. Please try again later."

    def __init__(
        self,
        code: str,
        request_id: str | None = None,
        display_message: str | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        self.code = code
        self.request_id = request_id
        self.display_message = display_message
        self.http_status = http_status
        self.error_type = error_type
        super().__init__(f"{display_message or self.default_message} ({code}, request {request_id or 'n/a'})")


class LoginRequired(PlaidError):
    """The bank needs the user to sign in again (Link update mode)."""

    default_message = "Your bank needs you to sign in again to keep syncing."


class RateLimited(PlaidError):
    """Too many calls for this item or client; back off."""

    default_message = "Too many requests to the bank connection service; try again in a minute."


class InstitutionDown(PlaidError):
    """The institution is not responding."""

    default_message = "Your bank is not responding right now; try again later."


class InvalidRequest(PlaidError):
    """Plaid rejected the request itself (keys, token or a field)."""

    default_message = "The bank connection service rejected the request; check the Plaid settings or relink."


class MutationDuringPagination(PlaidError):
    """Data changed mid-pagination: restart the sync from its starting cursor."""

    default_message = "Transactions changed while syncing; the sync will restart."


class Transient(PlaidError):
    """A server error, network failure or unreadable response; retry later."""

    default_message = "The bank connection service is temporarily unavailable; try again later."


_BY_CODE: dict[str, type[PlaidError]] = {
    "ITEM_LOGIN_REQUIRED": LoginRequired,
    "INSTITUTION_DOWN": InstitutionDown,
    "INSTITUTION_NOT_RESPONDING": InstitutionDown,
    "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION": MutationDuringPagination,
}
_BY_TYPE: dict[str, type[PlaidError]] = {
    "RATE_LIMIT_EXCEEDED": RateLimited,
    "INVALID_REQUEST": InvalidRequest,
    "INVALID_INPUT": InvalidRequest,
    "API_ERROR": Transient,
}


def error_from_body(status: int, body: str | bytes | None) -> PlaidError:
    """Decode Plaid's error body into our exception tree (falls back on the HTTP status)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("error_code") or f"HTTP_{status}")
    etype = str(data.get("error_type") or "")
    cls = _BY_CODE.get(code) or _BY_TYPE.get(etype)
    if cls is None:
        cls = RateLimited if status == 429 else Transient if status >= 500 or status == 0 else PlaidError
    display = data.get("display_message")
    request_id = data.get("request_id")
    return cls(
        code,
        request_id=str(request_id) if request_id else None,
        display_message=str(display) if display else None,
        http_status=status,
        error_type=etype or None,
    )


# -- money and dates ---------------------------------------------------------------------------------


def to_minor(amount: float | int | str | Decimal, currency: str | None) -> int:
    """Convert a decimal amount to integer minor units of its currency, exactly (via `str`, never float math)."""
    exp = _EXPONENTS.get((currency or "").upper(), 2)
    value = Decimal(str(amount)).scaleb(exp).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(value)


def statement_minor(plaid_amount: float | int | str | Decimal, currency: str | None) -> int:
    """Plaid's amount (positive = money out) to statement-signed minor units (money out negative)."""
    return -to_minor(plaid_amount, currency)


def as_date(value: date | str | None) -> date | None:
    """Accept a `date` (SDK models) or an ISO string (raw JSON)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def as_datetime(value: datetime | str | None) -> datetime | None:
    """Accept a `datetime` or an ISO-8601 string (with `Z`)."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed


def _opt_minor(value: Any, currency: str | None) -> int | None:
    return None if value is None else to_minor(value, currency)


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


# -- our shapes --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Transaction:
    """A transaction normalised once: statement-signed minor units, real dates, open category strings."""

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
class SyncPage:
    """One /transactions/sync page."""

    added: tuple[Transaction, ...]
    modified: tuple[Transaction, ...]
    removed: tuple[str, ...]
    accounts: tuple[Account, ...]
    next_cursor: str = field(repr=False)
    has_more: bool
    update_status: str
    request_id: str


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


# -- mapping (pure; takes dicts from raw JSON or the SDK's to_dict()) -------------------------------


def map_transaction(t: Json) -> Transaction:
    """Map one Plaid transaction; the amount sign is reversed here and nowhere else."""
    currency = t.get("iso_currency_code") or t.get("unofficial_currency_code")
    pfc = t.get("personal_finance_category") or {}
    day = as_date(t["date"])
    assert day is not None
    return Transaction(
        transaction_id=str(t["transaction_id"]),
        account_id=str(t["account_id"]),
        amount_minor=statement_minor(t["amount"], currency),
        iso_currency_code=_s(t.get("iso_currency_code")),
        unofficial_currency_code=_s(t.get("unofficial_currency_code")),
        date=day,
        authorized_date=as_date(t.get("authorized_date")),
        name=str(t.get("name") or t.get("merchant_name") or ""),
        merchant_name=_s(t.get("merchant_name")),
        pending=bool(t["pending"]),
        pending_transaction_id=_s(t.get("pending_transaction_id")),
        category_primary=_s(pfc.get("primary")),
        category_detailed=_s(pfc.get("detailed")),
        category_confidence=_s(pfc.get("confidence_level")),
        payment_channel=_s(t.get("payment_channel")),
        website=_s(t.get("website")),
    )


def map_account(a: Json) -> Account:
    """Map one AccountBase."""
    b = a.get("balances") or {}
    currency = b.get("iso_currency_code") or b.get("unofficial_currency_code")
    return Account(
        account_id=str(a["account_id"]),
        name=str(a.get("name") or ""),
        official_name=_s(a.get("official_name")),
        mask=_s(a.get("mask")),
        type=str(a.get("type")),
        subtype=_s(a.get("subtype")),
        current_minor=_opt_minor(b.get("current"), currency),
        available_minor=_opt_minor(b.get("available"), currency),
        limit_minor=_opt_minor(b.get("limit"), currency),
        iso_currency_code=_s(b.get("iso_currency_code")),
    )


def map_item(i: Json, status: Json | None = None) -> ItemInfo:
    """Map an Item (and the optional /item/get status)."""
    tx = (status or {}).get("transactions") or {}
    err = i.get("error") or {}
    return ItemInfo(
        item_id=str(i["item_id"]),
        institution_id=_s(i.get("institution_id")),
        institution_name=_s(i.get("institution_name")),
        webhook=_s(i.get("webhook")),
        error_code=_s(err.get("error_code")),
        update_type=_s(i.get("update_type")),
        last_successful_update=as_datetime(tx.get("last_successful_update")),
        last_failed_update=as_datetime(tx.get("last_failed_update")),
    )


def map_sync_page(r: Json) -> SyncPage:
    """Map a /transactions/sync body (raw JSON)."""
    return SyncPage(
        added=tuple(map_transaction(t) for t in r["added"]),
        modified=tuple(map_transaction(t) for t in r["modified"]),
        removed=tuple(str(x["transaction_id"]) for x in r["removed"]),
        accounts=tuple(map_account(a) for a in r["accounts"]),
        next_cursor=str(r["next_cursor"]),
        has_more=bool(r["has_more"]),
        update_status=str(r.get("transactions_update_status") or ""),
        request_id=str(r.get("request_id") or ""),
    )


def map_stream(s: Json) -> RecurringStream:
    """Map a TransactionStream."""
    avg, last = s.get("average_amount") or {}, s.get("last_amount") or {}
    currency = avg.get("iso_currency_code") or avg.get("unofficial_currency_code")
    pfc = s.get("personal_finance_category") or {}
    return RecurringStream(
        stream_id=str(s["stream_id"]),
        account_id=str(s["account_id"]),
        description=str(s.get("description") or ""),
        merchant_name=_s(s.get("merchant_name")),
        frequency=str(s.get("frequency")),
        status=str(s.get("status")),
        is_active=bool(s.get("is_active")),
        first_date=as_date(s.get("first_date")),
        last_date=as_date(s.get("last_date")),
        predicted_next_date=as_date(s.get("predicted_next_date")),
        average_amount_minor=None if avg.get("amount") is None else statement_minor(avg["amount"], currency),
        last_amount_minor=None if last.get("amount") is None else statement_minor(last["amount"], currency),
        iso_currency_code=_s(avg.get("iso_currency_code")),
        category_primary=_s(pfc.get("primary")),
        category_detailed=_s(pfc.get("detailed")),
        transaction_ids=tuple(str(x) for x in s.get("transaction_ids") or ()),
    )


def map_institution(i: Json) -> Institution:
    """Map an Institution."""
    return Institution(
        institution_id=str(i["institution_id"]),
        name=str(i["name"]),
        url=_s(i.get("url")),
        primary_color=_s(i.get("primary_color")),
        logo=_s(i.get("logo")),
        country_codes=tuple(str(c) for c in i.get("country_codes") or ()),
        products=tuple(str(p) for p in i.get("products") or ()),
        oauth=bool(i.get("oauth")),
    )


# -- the gateway -------------------------------------------------------------------------------------

Recorder = Callable[[CallEvent], None]


class PlaidGateway:
    """One configured Plaid client; every method is one API call with a timeout and our types."""

    def __init__(
        self,
        env: Environment,
        client_id: str,
        secret: str,
        base_url: str | None = None,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        recorder: Recorder | None = None,
        client_name: str = "finsync",
        country_codes: tuple[str, ...] = ("US",),
    ) -> None:
        if env == "demo" and not base_url:
            raise FinsyncError("The demo environment needs the demo bank's base URL.")
        if env not in ("demo", "sandbox", "production"):
            raise FinsyncError(f"Unknown Plaid environment {env!r}: use demo, sandbox or production.")
        host = (base_url or _HOSTS[env]).rstrip("/")
        cfg = plaid.Configuration(
            host=host, api_key={"clientId": client_id, "secret": secret, "plaidVersion": PLAID_VERSION}
        )
        cfg.retries = 0  # retries are the caller's policy, not urllib3's
        self.env = env
        self._api = plaid_api.PlaidApi(plaid.ApiClient(cfg))
        self._timeout = timeout
        self._recorder = recorder
        self._client_name = client_name
        self._countries = [CountryCode(c) for c in country_codes]

    @contextmanager
    def _call(self, endpoint: str) -> Iterator[dict[str, Any]]:
        """Time one call, translate its failures and report it to the recorder."""
        started = time.perf_counter()
        meta: dict[str, Any] = {"request_id": None}
        code: str | None = None
        status: int | None = None
        try:
            yield meta
            status = 200
        except plaid.ApiException as exc:
            err = error_from_body(int(exc.status or 0), exc.body)
            code, status, meta["request_id"] = err.code, err.http_status, err.request_id
            raise err from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            code = "NETWORK_ERROR"
            raise Transient(code, display_message=f"Could not reach Plaid ({type(exc).__name__}).") from None
        except (TypeError, ValueError, KeyError, plaid.ApiTypeError, plaid.ApiValueError):
            code, status = "MALFORMED_RESPONSE", 200
            raise Transient(code, display_message="Plaid sent a response we could not read.") from None
        finally:
            if self._recorder is not None:
                ms = int((time.perf_counter() - started) * 1000)
                self._recorder(CallEvent(endpoint, meta["request_id"], ms, code, status))

    def _kw(self) -> dict[str, Any]:
        return {"_request_timeout": self._timeout}

    def link_token_create(
        self,
        client_user_id: str,
        *,
        access_token: str | None = None,
        webhook: str | None = None,
        redirect_uri: str | None = None,
        days_requested: int = 730,
    ) -> LinkToken:
        """Create a Link token; with `access_token` it opens Link in update mode for that item."""
        args: dict[str, Any] = {
            "client_name": self._client_name,
            "language": "en",
            "country_codes": self._countries,
            "user": LinkTokenCreateRequestUser(client_user_id=client_user_id),
        }
        if access_token:
            args["access_token"] = access_token
        else:
            args["products"] = [Products("transactions")]
            args["transactions"] = {"days_requested": days_requested}
        if webhook:
            args["webhook"] = webhook
        if redirect_uri:
            args["redirect_uri"] = redirect_uri
        with self._call("/link/token/create") as meta:
            r = self._api.link_token_create(LinkTokenCreateRequest(**args), **self._kw())
            meta["request_id"] = r.request_id
            return LinkToken(r.link_token, r.expiration, r.request_id)

    def exchange_public_token(self, public_token: str) -> ItemAccess:
        """Swap Link's public token for a permanent access token."""
        with self._call("/item/public_token/exchange") as meta:
            r = self._api.item_public_token_exchange(
                ItemPublicTokenExchangeRequest(public_token=public_token), **self._kw()
            )
            meta["request_id"] = r.request_id
            return ItemAccess(r.item_id, r.access_token, r.request_id)

    def sandbox_public_token_create(
        self, institution_id: str, *, username: str | None = None, webhook: str | None = None
    ) -> str:
        """Link an item without UI (sandbox and demo only); `username` picks the demo behaviour."""
        opts: dict[str, Any] = {}
        if username:
            opts["override_username"] = username
        if webhook:
            opts["webhook"] = webhook
        req = SandboxPublicTokenCreateRequest(
            institution_id=institution_id,
            initial_products=[Products("transactions")],
            options=SandboxPublicTokenCreateRequestOptions(**opts),
        )
        with self._call("/sandbox/public_token/create") as meta:
            r = self._api.sandbox_public_token_create(req, **self._kw())
            meta["request_id"] = r.request_id
            return str(r.public_token)

    def accounts_get(self, access_token: str) -> AccountsResult:
        """Accounts with cached balances."""
        with self._call("/accounts/get") as meta:
            r = self._api.accounts_get(AccountsGetRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return self._accounts_result(r.to_dict())

    def accounts_balance_get(self, access_token: str) -> AccountsResult:
        """Accounts with balances fetched live from the institution."""
        with self._call("/accounts/balance/get") as meta:
            r = self._api.accounts_balance_get(AccountsBalanceGetRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return self._accounts_result(r.to_dict())

    @staticmethod
    def _accounts_result(d: Json) -> AccountsResult:
        return AccountsResult(tuple(map_account(a) for a in d["accounts"]), map_item(d["item"]), str(d["request_id"]))

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        """One page of changes; read as raw JSON because the SDK's models decode ~300 transactions/s."""
        if not 1 <= count <= 500:
            raise InvalidRequest("INVALID_FIELD", display_message="count must be between 1 and 500.")
        req = TransactionsSyncRequest(access_token=access_token, cursor=cursor, count=count)
        with self._call("/transactions/sync") as meta:
            raw = self._api.transactions_sync(req, _preload_content=False, **self._kw())
            data = json.loads(raw.data)
            meta["request_id"] = data.get("request_id")
            return map_sync_page(data)

    def transactions_refresh(self, access_token: str) -> str:
        """Ask Plaid to look for new transactions now; returns the request id."""
        with self._call("/transactions/refresh") as meta:
            r = self._api.transactions_refresh(TransactionsRefreshRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return str(r.request_id)

    def transactions_recurring_get(self, access_token: str) -> RecurringResult:
        """Recurring inflow and outflow streams."""
        req = TransactionsRecurringGetRequest(access_token=access_token)
        with self._call("/transactions/recurring/get") as meta:
            r = self._api.transactions_recurring_get(req, **self._kw())
            meta["request_id"] = r.request_id
            d = r.to_dict()
            return RecurringResult(
                tuple(map_stream(s) for s in d["inflow_streams"]),
                tuple(map_stream(s) for s in d["outflow_streams"]),
                as_datetime(d.get("updated_datetime")),
                str(d["request_id"]),
            )

    def item_get(self, access_token: str) -> ItemInfo:
        """The item with its error state and last update times."""
        with self._call("/item/get") as meta:
            r = self._api.item_get(ItemGetRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            d = r.to_dict()
            return map_item(d["item"], d.get("status"))

    def item_remove(self, access_token: str) -> str:
        """Revoke the access token for good; returns the request id."""
        with self._call("/item/remove") as meta:
            r = self._api.item_remove(ItemRemoveRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return str(r.request_id)

    def institution_get_by_id(self, institution_id: str) -> Institution:
        """An institution's name, colours and products."""
        req = InstitutionsGetByIdRequest(institution_id=institution_id, country_codes=self._countries)
        with self._call("/institutions/get_by_id") as meta:
            r = self._api.institutions_get_by_id(req, **self._kw())
            meta["request_id"] = r.request_id
            return map_institution(r.to_dict()["institution"])

    def webhook_verification_key_get(self, key_id: str) -> WebhookKey:
        """The public JWK for a webhook's `kid`."""
        with self._call("/webhook_verification_key/get") as meta:
            r = self._api.webhook_verification_key_get(WebhookVerificationKeyGetRequest(key_id=key_id), **self._kw())
            meta["request_id"] = r.request_id
            k = r.to_dict()["key"]
            return WebhookKey(
                str(k["kid"]), str(k["alg"]), str(k["crv"]), str(k["kty"]), str(k["use"]), str(k["x"]), str(k["y"]),
                int(k["created_at"]), None if k.get("expired_at") is None else int(k["expired_at"]),
            )  # fmt: skip
