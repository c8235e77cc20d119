"""Security headers on every response of the ``st.App`` server: the Content-Security-Policy (services/web_csp.py),
frame and sniffing protection, HSTS, and no-store; and Streamlit's socket only from finsync's own pages."""

from __future__ import annotations

import logging
from functools import lru_cache

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ratelimit import TokenBucket
from services.web_csp import content_security_policy, websocket_origins
from services.web_origins import own_page

log = logging.getLogger("finsync.web")
_refusals = TokenBucket(rate=1 / 60, burst=1)  # one log line a minute while a page keeps trying
_crashes = TokenBucket(rate=1 / 60, burst=1)  # one traceback a minute for an error of ours, however often hit


# Streamlit 1.67 serves its content-hashed JS/CSS bundles under /static/ as "public, immutable, max-age=1y"
# (streamlit/web/server/starlette/starlette_static_routes.py); only those may sit in a cache. Everything
# else (the page, health checks, media downloads, our routes, Streamlit's own "no-cache" answers) is no-store.
STATIC_ASSET_PREFIX = "/static/"


def _keeps_cache_control(path: str, status: int, cache_control: bytes | None) -> bool:
    """A hashed bundle keeps Streamlit's caching; so does its 304, whose headers would overwrite the cached copy's."""
    if not path.startswith(STATIC_ASSET_PREFIX):
        return False
    return status == 304 or (cache_control is not None and b"immutable" in cache_control.lower())


Header = tuple[bytes, bytes]


def _with_ours(headers: list[Header], ours: list[Header], path: str, status: int) -> list[Header]:
    """A response's headers plus ours where it set none of the same name, and no-store unless it may be cached."""
    present = {name.lower() for name, _ in headers}
    headers.extend(h for h in ours if h[0] not in present)
    cache = next((value for name, value in headers if name.lower() == b"cache-control"), None)
    if not _keeps_cache_control(path, status, cache):
        headers = [h for h in headers if h[0].lower() != b"cache-control"]
        headers.append((b"cache-control", b"no-store"))
    return headers


@lru_cache(maxsize=256)
def _policy_for(
    extra_origins: tuple[str, ...], script_hashes: tuple[str, ...], public_url: str | None, host: str | None
) -> bytes:
    """The encoded CSP for one public URL or Host: built once per value, not on every response."""
    return content_security_policy(extra_origins, websocket_origins(public_url, host), script_hashes).encode()


_CLOSED = "/_stcore/metrics"  # of Streamlit's routes, the one that tells strangers about the server's use


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, Referrer-Policy, frame protection, no-store (bar G5) and (under HTTPS) HSTS.

    ``public_url`` is FINSYNC_BASE_URL when the operator set one; without it the CSP names each request's Host.
    ``script_hashes``: the hashes of the served page's inline scripts (``inline_script_hashes``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        https: bool = False,
        extra_origins: tuple[str, ...] = (),
        public_url: str | None = None,
        script_hashes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.extra_origins = extra_origins
        self.script_hashes = script_hashes
        self.public_url = public_url
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin-allow-popups"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        app = self.app
        if scope["path"].endswith(_CLOSED):  # Streamlit's cache metrics: how many sessions are open, and more
            app = PlainTextResponse("Not Found", status_code=404)
        host = None if self.public_url else Headers(scope=scope).get("host")
        csp = _policy_for(self.extra_origins, self.script_hashes, self.public_url, host)
        ours = [(b"content-security-policy", csp), *self.headers]

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_ours(
                    list(message.get("headers", [])), ours, scope["path"], message["status"]
                )
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:  # half a response is out: nothing better to send
                raise
            # A bug of ours: a bare 500 with our headers (Starlette's own error page would go out without them),
            # one traceback a minute in the log and a line for the rest, however often it is hit.
            if _crashes.take() == 0.0:
                log.exception("unhandled error on %s %s", scope.get("method", ""), scope["path"][:200])
            else:
                log.error(
                    "unhandled error on %s %s: %s", scope.get("method", ""), scope["path"][:200], type(exc).__name__
                )
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send_with_headers)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Streamlit's ``/_stcore/stream`` socket carries the session cookie and runs every page. Streamlit accepts
        it from any page on localhost or this machine's addresses, whatever the port; a browser sends the cookie
        with it, since another port is the same site. So a page of another local server could read and act
        as the signed-in user. Only finsync's own pages may open it: ``Origin`` must name the host and port the
        socket was opened to, or the public URL. A client without ``Origin`` is not a browser and has no cookie."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and not own_page(origin, headers.get("host"), self.public_url):
            if _refusals.take() == 0.0:
                log.warning(
                    "refused a socket opened by another site's page (origin %s): if people open finsync at that "
                    "address, set FINSYNC_BASE_URL to it",
                    origin[:100],
                )
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        await self.app(scope, receive, send)
