"""HTTP routes served beside the Streamlit app by ``st.App``: health, the session cookie hand-off, Plaid webhooks
(no Streamlit here; the security headers are services.web_headers)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.client_address import client_address, sender
from services.container import Container
from services.db import check_database, is_outage, outage_reason
from services.downloads import SHELF, DownloadShelf
from services.errors import FinsyncError, Throttled
from services.ratelimit import KeyedBuckets, TokenBucket

log = logging.getLogger("finsync.webhooks")
auth_log = logging.getLogger("finsync.auth")


# A database that stops answering must not hold the probe (nor, run on the event loop, every user's page).
HEALTH_TIMEOUT_SECONDS = 3.0


def health_route(get_container: Callable[[], Container]) -> Route:
    """``GET /healthz``: 200 when the database answers within a few seconds, 503 otherwise (no details leak)."""
    import anyio.to_thread

    busy = [False]  # one check at a time: probes every second against a hung database must not pile up threads

    def probe() -> None:
        busy[0] = True  # set in the thread: a check cancelled before it starts never leaves the flag up
        try:
            check_database(get_container().engine)
        finally:
            busy[0] = False

    async def healthz(_request: Request) -> JSONResponse:
        try:
            if busy[0]:
                raise TimeoutError
            # abandon_on_cancel: on timeout answer now, leaving the stuck check to end in its thread.
            await asyncio.wait_for(
                anyio.to_thread.run_sync(probe, abandon_on_cancel=True), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except (FinsyncError, TimeoutError):
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return Route("/healthz", healthz, methods=["GET"])


def session_cookie_name(secure: bool) -> str:
    """``__Host-`` needs Secure; plain HTTP (local use) gets a plain name."""
    return "__Host-finsync_session" if secure else "finsync_session"


def _same_origin(request: Request) -> bool:
    # Login-CSRF guard for our POST routes: browsers send Sec-Fetch-Site / Origin on fetch().
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def _client(request: Request, c: Container) -> tuple[str, str]:
    peer = request.client.host if request.client else ""
    # Every X-Forwarded-For line, in order: a proxy may add its own line rather than extend the client's, and the
    # first line is whatever the client wrote.
    forwarded = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    ip = client_address(peer, forwarded, c.settings.proxy_hops)
    return ip[:64], request.headers.get("user-agent", "")[:256]


def auth_routes(get_container: Callable[[], Container]) -> list[Route]:
    """``POST /auth/session`` trades a hand-off ticket for the session cookie; ``POST /auth/logout`` ends it."""
    from starlette.concurrency import run_in_threadpool

    from services import auth, jobs, sessions

    def open_session(c: Container, ticket: str, ip: str, agent: str) -> str:
        token = auth.redeem_ticket(c, ticket=ticket, ip=ip, user_agent=agent)
        try:
            view = sessions.current_user(c, token)
            if view is not None:  # banks last synced over an hour ago are queued now
                jobs.request_sync_on_sign_in(c, view.user.id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # A courtesy: the session is made and its ticket spent, so the cookie goes out; the schedule syncs them.
            auth_log.warning("sign-in: banks not queued for a sync, the database is busy: %s", outage_reason(exc))
        return token

    async def start_session(request: Request) -> JSONResponse:
        if not _same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, status_code=403)
        body = await _read_capped(request, MAX_TICKET_BYTES)  # a ticket is 43 characters: a big body is never held
        if body is None:
            return JSONResponse({"error": "too large"}, status_code=413)
        c = get_container()
        ip, agent = _client(request, c)
        try:
            token = await run_in_threadpool(open_session, c, body.decode("ascii", "replace").strip(), ip, agent)
        except Throttled as exc:  # too many dead tickets from this address (services.auth.redeem_ticket)
            retry = str(max(1, exc.retry_after))
            return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": retry})
        except FinsyncError:
            return JSONResponse({"error": "This sign-in link has expired. Sign in again."}, status_code=401)
        response = JSONResponse({"status": "signed in"})
        secure = c.settings.secure_cookies
        response.set_cookie(
            session_cookie_name(secure),
            token,
            max_age=c.settings.session_absolute_hours * 3600,
            path="/",
            secure=secure,
            httponly=True,
            samesite="lax",
        )
        return response

    async def end_session(request: Request) -> JSONResponse:
        if not _same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, status_code=403)
        c = get_container()
        name = session_cookie_name(c.settings.secure_cookies)
        token = request.cookies.get(name)
        if token:
            await run_in_threadpool(sessions.sign_out, c, token)
        response = JSONResponse({"status": "signed out"})
        response.delete_cookie(name, path="/", secure=c.settings.secure_cookies, httponly=True, samesite="lax")
        return response

    return [
        Route("/auth/session", start_session, methods=["POST"]),
        Route("/auth/logout", end_session, methods=["POST"]),
    ]


def download_route(get_container: Callable[[], Container], shelf: DownloadShelf | None = None) -> Route:
    """``GET /download/<token>``: a file the caller's own session prepared (services/downloads.py), as an
    attachment; 404 for anything else, and for a request without a live session."""
    from starlette.concurrency import run_in_threadpool

    from services import sessions

    held = shelf if shelf is not None else SHELF

    async def download(request: Request) -> Response:
        c = get_container()
        view = await run_in_threadpool(
            sessions.current_user, c, request.cookies.get(session_cookie_name(c.settings.secure_cookies))
        )
        found = held.get(request.path_params["token"], view.session_id) if view is not None else None
        if found is None:
            return PlainTextResponse(DOWNLOAD_GONE, status_code=404)
        return Response(
            found.data,
            media_type=found.mime,
            headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
        )

    return Route("/download/{token}", download, methods=["GET"])


DOWNLOAD_GONE = (
    "This download is no longer available: it lasts 10 minutes, for the browser that prepared it while it is signed "
    "in. Prepare the file again on the Transactions page."
)


# Security bar L7. Plaid sends a few webhooks per bank a day, so 20 a second per sender is far above real
# traffic; a burst of 100 absorbs a backlog Plaid redelivers at once. Plaid retries a delivery without a 200
# for up to 24 hours, so a 429 loses nothing (plaid.com/docs/api/webhooks/#webhook-retries).
WEBHOOK_RATE = 20.0  # per sender (an IPv4 address, an IPv6 /64): a flood from one cannot keep Plaid's out
WEBHOOK_BURST = 100
WEBHOOK_ALL_RATE, WEBHOOK_ALL_BURST = 100.0, 500  # and all senders together, per process: the verification work
REJECTED_RECORD_RATE, REJECTED_RECORD_BURST = 1.0, 60  # rejected deliveries stored and logged: the table traces
# probes, and a flood of forgeries can fill neither the database nor the log
MAX_WEBHOOK_BYTES = 64 * 1024  # Plaid's webhook bodies are a few hundred bytes
MAX_TICKET_BYTES = 512  # the sign-in hand-off posts one ticket


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it (or its declared length) passes ``limit``: a large body is never held."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def webhook_route(
    get_container: Callable[[], Container],
    *,
    limiter: KeyedBuckets | None = None,
    ceiling: TokenBucket | None = None,
    recorder: TokenBucket | None = None,
) -> Route:
    """``POST /webhooks/plaid``: rate-limited, then verified before anything else (services/webhooks.py); answers fast.

    The limit is one bucket per sender (``sender``: the address as far as FINSYNC_PROXY_HOPS trusts
    X-Forwarded-For) under a ``ceiling`` for all of them, per process; both are checked before the body is read.
    ``recorder`` budgets how many rejected deliveries are stored and logged.
    """
    from starlette.concurrency import run_in_threadpool

    from services import webhooks

    buckets = limiter if limiter is not None else KeyedBuckets(WEBHOOK_RATE, WEBHOOK_BURST)
    everyone = ceiling if ceiling is not None else TokenBucket(WEBHOOK_ALL_RATE, WEBHOOK_ALL_BURST)
    records = recorder if recorder is not None else TokenBucket(REJECTED_RECORD_RATE, REJECTED_RECORD_BURST)

    def may_record() -> bool:
        return records.take() == 0.0

    async def plaid_webhook(request: Request) -> JSONResponse:
        c = get_container()
        source = sender(_client(request, c)[0])
        if wait := buckets.take(source) or everyone.take():  # a sender over its own budget spends nobody's
            retry = str(max(1, math.ceil(wait)))
            return JSONResponse({"error": "too many requests"}, status_code=429, headers={"Retry-After": retry})
        body = await _read_capped(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return JSONResponse({"error": "too large"}, status_code=413)
        try:
            result = await run_in_threadpool(
                lambda: webhooks.handle_webhook(
                    c, body=body, headers=dict(request.headers), source=source, may_record=may_record
                )
            )
        except Exception as exc:
            if not is_outage(exc):
                raise
            # Nothing was applied: Plaid delivers again later (a non-200 answer), and the scheduled sync remains.
            log.error("webhook not handled, the database is unavailable: %s", outage_reason(exc))
            return JSONResponse({"error": "try again later"}, status_code=503, headers={"Retry-After": "60"})
        if result.status_code == 401:  # why it failed is in the delivery's record: a forger learns nothing
            return JSONResponse({"error": "unverified"}, status_code=401)
        return JSONResponse({"outcome": result.outcome}, status_code=result.status_code)

    return Route("/webhooks/plaid", plaid_webhook, methods=["POST"])
