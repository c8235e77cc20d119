"""The Plaid gateway: the only module that imports `plaid`; our frozen dataclasses in and out."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import orjson
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
from plaid.model.link_token_create_request_update import LinkTokenCreateRequestUpdate
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.products import Products
from plaid.model.sandbox_item_fire_webhook_request import SandboxItemFireWebhookRequest
from plaid.model.sandbox_item_reset_login_request import SandboxItemResetLoginRequest
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.sandbox_public_token_create_request_options import SandboxPublicTokenCreateRequestOptions
from plaid.model.transactions_recurring_get_request import TransactionsRecurringGetRequest
from plaid.model.transactions_refresh_request import TransactionsRefreshRequest
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest

from services.errors import FinsyncError
from services.plaid_calls import answered, metered, unreadable
from services.plaid_errors import InvalidRequest, Transient
from services.plaid_mapping import map_institution, map_item, map_sync_page
from services.plaid_results import map_accounts_result, map_recurring_result, map_webhook_key
from services.plaid_types import (
    AccountsResult,
    Institution,
    ItemAccess,
    ItemInfo,
    LinkToken,
    Recorder,
    RecurringResult,
    SyncPage,
    WebhookKey,
)

__all__ = ["PLAID_VERSION", "Environment", "PlaidGateway"]

PLAID_VERSION = "2020-09-14"
Environment = Literal["demo", "sandbox", "production"]
BaseUrl = str | Callable[[], str]
_HOSTS = {"sandbox": plaid.Environment.Sandbox, "production": plaid.Environment.Production}


class PlaidGateway:
    """One configured Plaid client; every method is one API call with a timeout and our types."""

    def __init__(
        self,
        env: Environment,
        client_id: str,
        secret: str,
        base_url: BaseUrl | None = None,
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
        self.env = env
        self._base_url: BaseUrl = base_url or _HOSTS[env]
        self._credentials = (client_id, secret)
        self._client: plaid_api.PlaidApi | None = None
        self._timeout = timeout
        self._recorder = recorder
        self._client_name = client_name
        self._countries = [CountryCode(c) for c in country_codes]

    @property
    def _api(self) -> plaid_api.PlaidApi:
        """The SDK client, built on first use (a callable base URL, e.g. the demo bank, starts only then)."""
        if self._client is None:
            client_id, secret = self._credentials
            cfg = plaid.Configuration(
                host=self.base_url, api_key={"clientId": client_id, "secret": secret, "plaidVersion": PLAID_VERSION}
            )
            cfg.retries = 0  # retries are the caller's policy, not urllib3's
            self._client = plaid_api.PlaidApi(plaid.ApiClient(cfg))
        return self._client

    @property
    def base_url(self) -> str:
        """Where the API lives (starts the demo bank if the URL is lazy)."""
        return (self._base_url() if callable(self._base_url) else self._base_url).rstrip("/")

    @property
    def recorder(self) -> Recorder | None:
        """Who hears about every call (``CallEvent``), if anyone."""
        return self._recorder

    def with_recorder(self, recorder: Recorder | None) -> PlaidGateway:
        """The same client (shared connection pool) reporting to another recorder."""
        twin = copy.copy(self)
        twin._recorder = recorder
        if self._client is None:
            _ = self._api  # build once so both share the pool
            twin._client = self._client
        return twin

    @contextmanager
    def _call(self, endpoint: str) -> Iterator[dict[str, Any]]:
        """Translate one call's failures into our errors; ``metered`` times it and reports it to the recorder."""
        with metered(self._recorder, endpoint) as meta:
            try:
                yield meta
                meta["http_status"] = 200
            except plaid.ApiException as exc:
                raise answered(meta, exc) from None
            except UnicodeDecodeError as exc:
                if isinstance(exc.__context__, plaid.ApiException):  # the SDK reads every error body as UTF-8, and a
                    raise answered(meta, exc.__context__) from None  # proxy's 502 or 429 page may be Latin-1
                raise unreadable(meta) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                meta["error_code"] = code = "NETWORK_ERROR"
                raise Transient(code, display_message=f"Could not reach Plaid ({type(exc).__name__}).") from None
            # LookupError: an answer in a charset Python does not know; KeyError is one
            except (TypeError, ValueError, LookupError, plaid.ApiTypeError, plaid.ApiValueError):
                raise unreadable(meta) from None

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
        account_selection: bool = False,
    ) -> LinkToken:
        """Create a Link token; with `access_token` it opens Link in update mode for that item.

        `account_selection` lets update mode add accounts (for NEW_ACCOUNTS_AVAILABLE).
        """
        if account_selection and not access_token:
            raise InvalidRequest(
                "INVALID_FIELD", display_message="Account selection needs update mode: give the item's access token."
            )
        args: dict[str, Any] = {
            "client_name": self._client_name,
            "language": "en",
            "country_codes": self._countries,
            "user": LinkTokenCreateRequestUser(client_user_id=client_user_id),
        }
        if access_token:
            args["access_token"] = access_token
            if account_selection:
                # Off by default in update mode at non-OAuth institutions, so new accounts could not be picked:
                # https://plaid.com/docs/link/update-mode/#using-update-mode-to-request-new-accounts
                args["update"] = LinkTokenCreateRequestUpdate(account_selection_enabled=True)
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
        self,
        institution_id: str,
        *,
        username: str | None = None,
        webhook: str | None = None,
        days_requested: int = 730,
    ) -> str:
        """Link an item without UI (sandbox and demo only); `username` picks the demo behaviour.

        `days_requested` as in `link_token_create`: the history asked for, Link's default of 90 days being too short.
        """
        opts: dict[str, Any] = {"transactions": {"days_requested": days_requested}}
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

    def sandbox_item_reset_login(self, access_token: str) -> str:
        """Force an item into ITEM_LOGIN_REQUIRED (sandbox and demo only), to try the repair flow."""
        with self._call("/sandbox/item/reset_login") as meta:
            r = self._api.sandbox_item_reset_login(
                SandboxItemResetLoginRequest(access_token=access_token), **self._kw()
            )
            meta["request_id"] = r.request_id
            return str(r.request_id)

    def sandbox_item_fire_webhook(self, access_token: str, webhook_code: str) -> str:
        """Have Plaid (sandbox) or the demo bank send one of its webhooks for an item, to try the flows it starts."""
        with self._call("/sandbox/item/fire_webhook") as meta:
            r = self._api.sandbox_item_fire_webhook(
                SandboxItemFireWebhookRequest(access_token=access_token, webhook_code=webhook_code), **self._kw()
            )
            meta["request_id"] = r.request_id
            return str(r.request_id)

    def accounts_get(self, access_token: str) -> AccountsResult:
        """Accounts with cached balances."""
        with self._call("/accounts/get") as meta:
            r = self._api.accounts_get(AccountsGetRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return map_accounts_result(r.to_dict())

    def accounts_balance_get(self, access_token: str) -> AccountsResult:
        """Accounts with balances fetched live from the institution."""
        with self._call("/accounts/balance/get") as meta:
            r = self._api.accounts_balance_get(AccountsBalanceGetRequest(access_token=access_token), **self._kw())
            meta["request_id"] = r.request_id
            return map_accounts_result(r.to_dict())

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        """One page of changes; read as raw JSON because the SDK's models decode ~300 transactions/s."""
        if not 1 <= count <= 500:
            raise InvalidRequest("INVALID_FIELD", display_message="count must be between 1 and 500.")
        req = TransactionsSyncRequest(access_token=access_token, cursor=cursor, count=count)
        with self._call("/transactions/sync") as meta:
            raw = self._api.transactions_sync(req, _preload_content=False, **self._kw())
            data = orjson.loads(raw.data)  # about twice json.loads on a full page
            if not isinstance(data, dict):
                raise TypeError("the page is not a JSON object")
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
            return map_recurring_result(r.to_dict())

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
            return map_webhook_key(r.to_dict()["key"])
