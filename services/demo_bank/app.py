"""The demo bank as a Starlette ASGI app speaking Plaid's JSON API (mountable under any prefix)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.routing import BaseRoute, Mount, Route

from services.demo_bank import fields, problems
from services.demo_bank.bank import Bank
from services.demo_bank.catalog import INSTITUTIONS
from services.demo_bank.links import USERNAMES, link_accounts, link_login, link_session, new_link_session
from services.demo_bank.problems import BankError
from services.demo_bank.render import accounts_json, institution_json, iso, item_json, item_status_json, streams_json
from services.demo_bank.syncing import sync_page

_log = logging.getLogger("finsync.demo_bank")

DEMO_CLIENT_ID = "demo-client"
DEMO_SECRET = "demo-secret"
_STATIC = Path(__file__).with_name("static")
_ALNUM = string.ascii_letters + string.digits
RETRY_AFTER_SECONDS = "1"  # sent with every injected 429
Handler = Callable[[Bank, dict[str, Any]], dict[str, Any]]
_READ_ONLY = frozenset({"/institutions/get_by_id", "/webhook_verification_key/get"})


def _access_token(body: dict[str, Any]) -> str:
    fields.need(body, "access_token")
    return fields.text(body, "access_token")


def link_token_create(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Create a Link token (update mode when `access_token` is given)."""
    fields.need(body, "client_name", "language", "country_codes", "user")
    for name in ("client_name", "language"):
        fields.text(body, name)
    for name in ("country_codes", "products"):
        fields.texts(body, name)
    user = fields.obj(body, "user")
    fields.need(user, "client_user_id", where="user.")
    # Update mode lists the item's new accounts only with account selection on (off by default for
    # non-OAuth institutions): https://plaid.com/docs/link/update-mode/#using-update-mode-to-request-new-accounts
    selection = fields.flag(fields.obj(body, "update"), "account_selection_enabled", where="update.")
    token = new_link_session(
        bank,
        fields.text(user, "client_user_id", where="user."),
        fields.opt_text(body, "access_token"),
        fields.opt_text(body, "webhook"),
        account_selection=selection,
    )
    return {"link_token": token, "expiration": iso(link_session(bank, token).expires)}


def public_token_exchange(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Swap a public token for the item's access token."""
    fields.need(body, "public_token")
    item = bank.exchange(fields.text(body, "public_token"))
    return {"access_token": item.access_token, "item_id": item.item_id}


def sandbox_public_token_create(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Link an item without the UI; `options.override_username` picks its behaviour."""
    fields.need(body, "institution_id", "initial_products")
    institution_id = fields.text(body, "institution_id")
    fields.texts(body, "initial_products")
    opts = fields.obj(body, "options")
    username = fields.opt_text(opts, "override_username", where="options.")
    webhook = fields.opt_text(opts, "webhook", where="options.")
    if fields.opt_text(opts, "override_password", where="options.") not in (None, "pass_good"):
        raise BankError(400, "ITEM_ERROR", "INVALID_CREDENTIALS", "the provided credentials were not correct")
    item = bank.create_item(institution_id, username or "user_good", webhook)
    return {"public_token": bank.issue_public_token(item)}


def _accounts(bank: Bank, body: dict[str, Any], path: str) -> dict[str, Any]:
    token = _access_token(body)
    wanted = fields.texts(fields.obj(body, "options"), "account_ids", where="options.")
    item = bank.item_for(token, path)
    accounts = [a for a in accounts_json(item) if not wanted or a["account_id"] in wanted]
    return {"accounts": accounts, "item": item_json(item)}


def transactions_sync(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """One page of transaction updates since the cursor."""
    token = _access_token(body)
    cursor, count = fields.opt_text(body, "cursor") or "", fields.integer(body, "count", 100)
    item = bank.item_for(token, "/transactions/sync")
    return sync_page(item, cursor, count, bank.cursor_key)


def transactions_refresh(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Look for new data now: a fresh pending card charge appears and SYNC_UPDATES_AVAILABLE fires."""
    item = bank.item_for(_access_token(body), "/transactions/refresh")
    bank.mutate(item.item_id, "add", account="credit", cents=675, name="STARBUCKS STORE 0411", merchant_name="Starbucks",
                primary="FOOD_AND_DRINK", detailed="FOOD_AND_DRINK_COFFEE", pending=True)  # fmt: skip
    return {}


def recurring_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Recurring inflow and outflow streams detected in the item's history."""
    token = _access_token(body)
    wanted = fields.texts(body, "account_ids")
    item = bank.item_for(token, "/transactions/recurring/get")
    inflow, outflow = streams_json(item, wanted or None)
    return {"inflow_streams": inflow, "outflow_streams": outflow, "updated_datetime": iso(item.last_successful_update)}


def item_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """The item, its error (if any) and its update status."""
    item = bank.item_for(_access_token(body), "/item/get")
    return {"item": item_json(item), "status": item_status_json(item)}


def item_remove(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Invalidate the access token for good."""
    token = _access_token(body)
    with bank.lock:
        item = bank.item_for(token, "/item/remove")
        item.removed = True
        bank.by_token.pop(item.access_token, None)
    return {}


def institution_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """One demo institution."""
    fields.need(body, "institution_id", "country_codes")
    institution_id = fields.text(body, "institution_id")
    fields.texts(body, "country_codes")
    if institution_id not in INSTITUTIONS:
        raise BankError(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided")
    return {"institution": institution_json(institution_id)}


def webhook_key_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """The public JWK for a webhook signing key id."""
    fields.need(body, "key_id")
    key = bank.webhooks.keys.get(fields.text(body, "key_id"))
    if key is None:
        raise BankError(400, "INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "invalid key_id provided")
    return {"key": key.jwk()}


def sandbox_reset_login(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Force ITEM_LOGIN_REQUIRED, as Plaid's sandbox endpoint does."""
    item = bank.item_for(_access_token(body), "/item/get")
    bank.set_fault(item.item_id, "login_required")
    return {"reset_login": True}


FIRABLE = ("NEW_ACCOUNTS_AVAILABLE", "SYNC_UPDATES_AVAILABLE")  # the codes of Plaid's list this bank can fire


def sandbox_fire_webhook(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Plaid's /sandbox/item/fire_webhook for the codes the demo bank can act on.

    NEW_ACCOUNTS_AVAILABLE first opens an account at the bank (shared only when the user ticks it in update
    mode); SYNC_UPDATES_AVAILABLE just announces. Plaid refuses an item without a webhook URL, and so do we.
    """
    item = bank.item_for(_access_token(body), "/sandbox/item/fire_webhook")
    code = fields.opt_text(body, "webhook_code") or "DEFAULT_UPDATE"
    if code not in FIRABLE:
        raise problems.invalid_field(f"webhook_code must be one of {', '.join(FIRABLE)} for the demo bank")
    if not item.webhook:
        raise BankError(400, "INVALID_INPUT", "SANDBOX_WEBHOOK_INVALID", "the item has no webhook URL to fire at")
    if code == "NEW_ACCOUNTS_AVAILABLE":
        bank.set_fault(item.item_id, "new_accounts")
    else:
        bank.notify(item, "TRANSACTIONS", code, initial_update_complete=True, historical_update_complete=True)
    return {"webhook_fired": True}


HANDLERS: dict[str, Handler] = {
    "/link/token/create": link_token_create,
    "/item/public_token/exchange": public_token_exchange,
    "/sandbox/public_token/create": sandbox_public_token_create,
    "/sandbox/item/reset_login": sandbox_reset_login,
    "/sandbox/item/fire_webhook": sandbox_fire_webhook,
    "/accounts/get": lambda b, body: _accounts(b, body, "/accounts/get"),
    "/accounts/balance/get": lambda b, body: _accounts(b, body, "/accounts/balance/get"),
    "/transactions/sync": transactions_sync,
    "/transactions/refresh": transactions_refresh,
    "/transactions/recurring/get": recurring_get,
    "/item/get": item_get,
    "/item/remove": item_remove,
    "/institutions/get_by_id": institution_get,
    "/webhook_verification_key/get": webhook_key_get,
}


class JSONResponse(_StarletteJSON):
    """JSON rendered by orjson: a 500-transaction page encodes about ten times faster than with ``json``."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _request_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(15))


def _error(exc: BankError, request_id: str | None = None, headers: dict[str, str] | None = None) -> Response:
    if exc.status == 429:  # Plaid's rate-limit answers say when to come back; clients must honour it (bar L8)
        headers = {"Retry-After": RETRY_AFTER_SECONDS, **(headers or {})}
    return JSONResponse(exc.body(request_id or _request_id()), status_code=exc.status, headers=headers)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise problems.invalid_body() from None
    if not isinstance(body, dict):
        raise problems.invalid_body()
    return body


def _authenticate(request: Request, body: dict[str, Any], client_id: str, secret: str) -> None:
    given_id = str(request.headers.get("plaid-client-id") or body.get("client_id") or "")
    given_secret = str(request.headers.get("plaid-secret") or body.get("secret") or "")
    ok_id = hmac.compare_digest(given_id.encode(), client_id.encode())
    ok_secret = hmac.compare_digest(given_secret.encode(), secret.encode())
    if not (ok_id and ok_secret):
        raise problems.invalid_keys()


def _delay_for(bank: Bank, body: dict[str, Any]) -> float:
    item_id = bank.by_token.get(str(body.get("access_token") or ""))
    if item_id is None and body.get("public_token"):
        entry = bank.public_tokens.get(str(body["public_token"]))
        item_id = entry[0] if entry else None
    return bank.items[item_id].faults.delay if item_id else 0.0


def _api_route(bank: Bank, path: str, handler: Handler, client_id: str, secret: str) -> Route:
    async def endpoint(request: Request) -> Response:
        request_id = _request_id()
        try:
            body = await _json_body(request)
            _authenticate(request, body, client_id, secret)
            delay = _delay_for(bank, body)
            if delay:
                await asyncio.sleep(delay)
            result = handler(bank, body)
        except BankError as exc:
            return _error(exc, request_id)
        except Exception:  # a bug here must still look like Plaid's 500, so clients treat it as Plaid's
            _log.exception("demo bank: %s failed", path)
            return _error(problems.internal_error(), request_id)
        finally:
            if path not in _READ_ONLY:
                bank.save()
        result["request_id"] = request_id
        return JSONResponse(result)

    return Route(path, endpoint, methods=["POST"])


def _link_routes(bank: Bank) -> list[Mount]:
    """Endpoints the Link stand-in calls from the browser, authenticated by the link token alone."""

    async def session(request: Request) -> Response:
        try:
            body = await _json_body(request)
            with bank.lock:
                link = link_session(bank, str(body.get("link_token") or ""))
                update = bank.items[link.item_id].institution_id if link.item_id else None
        except BankError as exc:
            return _error(exc)
        institutions = [{"institution_id": i.institution_id, "name": i.name} for i in INSTITUTIONS.values()]
        return JSONResponse({"institutions": institutions, "update_institution_id": update,
                             "account_selection": link.account_selection, "usernames": sorted(USERNAMES)})  # fmt: skip

    def credentials(body: dict[str, Any]) -> tuple[str, str, str, str]:
        keys = ("link_token", "institution_id", "username", "password")
        token, institution, username, password = (str(body.get(k) or "") for k in keys)
        return token, institution, username, password

    async def accounts(request: Request) -> Response:
        try:
            body = await _json_body(request)
            result = link_accounts(bank, *credentials(body))
        except BankError as exc:
            return _error(exc)
        return JSONResponse(result)

    async def login(request: Request) -> Response:
        try:
            body = await _json_body(request)
            picked = body.get("account_keys")
            if picked is not None and not isinstance(picked, list):
                raise problems.invalid_field("account_keys must be a list")
            result = link_login(bank, *credentials(body), account_keys=picked)
        except BankError as exc:
            return _error(exc)
        bank.save()
        return JSONResponse(result)

    async def script(request: Request) -> Response:
        return FileResponse(_STATIC / "link-initialize.js", media_type="text/javascript")

    # Only these are called from a browser (the Link stand-in on the app's page, another origin): they
    # alone answer CORS. The Plaid API routes are for servers, so a web page can never call them.
    cors = Middleware(
        CORSMiddleware,
        allow_origins=["*"],  # the app may be opened under any host name; a link token authenticates
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type"],
    )
    routes = [
        Route("/link-initialize.js", script, methods=["GET"]),
        Route("/demo/session", session, methods=["POST"]),
        Route("/demo/accounts", accounts, methods=["POST"]),
        Route("/demo/login", login, methods=["POST"]),
    ]
    return [Mount("/link", routes=routes, middleware=[cors])]


def create_app(bank: Bank, client_id: str = DEMO_CLIENT_ID, secret: str = DEMO_SECRET) -> Starlette:
    """Build the ASGI app for a bank; mount it anywhere (the Link script finds its base from its own URL)."""
    routes: list[BaseRoute] = [_api_route(bank, path, h, client_id, secret) for path, h in HANDLERS.items()]
    routes += _link_routes(bank)

    # Plaid answers every failure, even a wrong method or its own crash, with its JSON error body.
    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(problems.not_found(request.url.path))

    async def wrong_method(request: Request, exc: Exception) -> Response:
        headers = getattr(exc, "headers", None)  # keeps Starlette's `Allow: POST`
        return _error(problems.wrong_method(request.url.path, request.method), headers=headers)

    async def crashed(request: Request, exc: Exception) -> Response:
        return _error(problems.internal_error())

    handlers = {404: not_found, 405: wrong_method, Exception: crashed}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.started = datetime.now(UTC)
    return app
