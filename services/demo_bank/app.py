"""The demo bank as a Starlette ASGI app speaking Plaid's JSON API (mountable under any prefix)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import string
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

from services.demo_bank import problems
from services.demo_bank.bank import Bank
from services.demo_bank.catalog import INSTITUTIONS
from services.demo_bank.endpoints import HANDLERS, Handler
from services.demo_bank.links import link_accounts, link_login, link_session
from services.demo_bank.problems import BankError

_log = logging.getLogger("finsync.demo_bank")

DEMO_CLIENT_ID = "demo-client"
DEMO_SECRET = "demo-secret"
_STATIC = Path(__file__).with_name("static")
_ALNUM = string.ascii_letters + string.digits
RETRY_AFTER_SECONDS = "1"  # sent with every injected 429
_READ_ONLY = frozenset({"/institutions/get_by_id", "/webhook_verification_key/get"})


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
        shown = [i for i in INSTITUTIONS.values() if i.listed or i.institution_id == update]
        institutions = [{"institution_id": i.institution_id, "name": i.name} for i in shown]
        return JSONResponse({"institutions": institutions, "update_institution_id": update,
                             "account_selection": link.account_selection})  # fmt: skip

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
