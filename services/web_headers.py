"""Security headers on every response of the ``st.App`` server: the Content-Security-Policy (Streamlit's needs,
Plaid Link's origins, the page's inline scripts by hash), frame and sniffing protection, HSTS, and no-store;
and Streamlit's socket only from finsync's own pages."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.container import Container
from services.ratelimit import TokenBucket

log = logging.getLogger("finsync.web")
_refusals = TokenBucket(rate=1 / 60, burst=1)  # one log line a minute while a page keeps trying
_crashes = TokenBucket(rate=1 / 60, burst=1)  # one traceback a minute for an error of ours, however often hit

# Plaid Link's documented CSP needs (plaid.com/docs/link/web/#content-security-policy).
PLAID_ORIGINS = ("https://cdn.plaid.com", "https://*.plaid.com")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def link_origins(c: Container) -> tuple[str, ...]:
    """Where Link loads from besides Plaid: the demo bank, and the origin of PLAID_LINK_SCRIPT_URL when set."""
    found: list[str] = []
    if c.plaid is not None and c.settings.effective_plaid_env == "demo":
        found.append(_origin(c.plaid.base_url))  # starts the demo bank: its port is only known then
    if c.settings.plaid_link_script_url:
        found.append(_origin(c.settings.plaid_link_script_url))
    return tuple(dict.fromkeys(o for o in found if o not in PLAID_ORIGINS))


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[(?P<ip6>[0-9a-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?", re.I | re.A)


def safe_host(value: str | None) -> str | None:
    """``value`` lower-cased when it is a host name or IP address with an optional port; otherwise None."""
    if not value or len(value) > 261:  # 253 for a name, 8 for "[]" and ":port"
        return None
    match = _HOST.fullmatch(value)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        return None
    try:
        if match["ip6"] is not None:
            ipaddress.IPv6Address(match["ip6"])
    except ValueError:
        return None
    return value.lower()


def websocket_origins(public_url: str | None, host: str | None) -> tuple[str, ...]:
    """Where the page may open WebSockets: its own origin only (Streamlit's ``/_stcore/stream``).

    CSP Level 3 lets 'self' cover ws:/wss: on the page's host, but older WebKit does not, so the origin is
    also named. It comes from the operator's public URL (one scheme, as the browser sees it); without one,
    from the request's Host header with both schemes, because a proxy in front may have ended TLS.
    Forwarded headers are not read: behind a proxy set FINSYNC_BASE_URL, as HSTS and Secure cookies need.
    A Host that is not a plain host[:port] adds nothing: 'self' alone still allows the page's own socket.
    """
    if public_url:
        parts = urlsplit(public_url)
        netloc = safe_host(parts.netloc)
        return (f"{'wss' if parts.scheme == 'https' else 'ws'}://{netloc}",) if netloc else ()
    netloc = safe_host(host)
    return (f"ws://{netloc}", f"wss://{netloc}") if netloc else ()


def _site(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an http(s) URL as a browser's ``Origin`` names it: lower case, the host in
    IDNA, the scheme's default port left out. None for anything else (another scheme, a bad port, "null")."""
    try:
        parts = urlsplit(url.strip())
        port, name = parts.port, parts.hostname
        if parts.scheme.lower() not in ("http", "https") or not name:
            return None
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except (ValueError, UnicodeError):
        return None
    scheme = parts.scheme.lower()
    name = f"[{name}]" if ":" in name else name  # IPv6
    return scheme, name if port in (None, 80 if scheme == "http" else 443) else f"{name}:{port}"


# Names only the local network resolves (RFC 6762 .local, RFC 8375 .home.arpa, .internal, .lan, .localhost):
# an attacker's page on the internet cannot be served under them.
_LOCAL_SUFFIXES = (".local", ".home.arpa", ".internal", ".lan", ".localhost")


def _named_by_no_one_else(site: str) -> bool:
    """True for IP addresses, ``localhost``, a machine's bare name and local-network names (any port): names no
    one else's DNS can point at this server."""
    name = (urlsplit(f"//{site}").hostname or "").rstrip(".")
    if "." not in name or name.endswith(_LOCAL_SUFFIXES):
        return bool(name)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def own_page(origin: str, host: str | None, public_url: str | None) -> bool:
    """True when a browser's ``Origin`` is a page of this server: the operator's public URL, or the host (and port)
    the request was sent to. A page on another port of the same machine is neither.

    With a public URL set, the request's own host counts only when it is an address or a local name (the
    operator opening the server directly, at home or on the machine). Any other name is DNS rebinding: a page of evil.example whose name
    now resolves to this server sends ``Host`` and ``Origin`` both evil.example (Streamlit's
    ``server.allowedHosts`` guards the same way, but only when filled in by hand)."""
    seen = _site(origin)
    if seen is None:
        return False
    if public_url is not None and _site(public_url) == seen:
        return True
    if not host or _site(f"{seen[0]}://{host}") != seen:
        return False
    return public_url is None or _named_by_no_one_else(seen[1])


class _InlineScripts(HTMLParser):
    """Collects the text of each ``<script>`` without ``src`` (what CSP calls an inline script)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._open = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._open is not None:
            self.found.append("".join(self._open))
            self._open = None


def inline_script_hashes(page_html: str) -> tuple[str, ...]:
    """CSP hash sources (``'sha256-...'``) for the inline scripts of the page Streamlit serves.

    Allowing exactly these, rather than ``'unsafe-inline'``, means a script an attacker manages to inject into
    the page does not run.
    """
    parser = _InlineScripts()
    parser.feed(page_html)
    digests = (base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() for text in parser.found)
    return tuple(dict.fromkeys(f"'sha256-{d}'" for d in digests))


def content_security_policy(
    extra_origins: tuple[str, ...] = (), websockets: tuple[str, ...] = (), script_hashes: tuple[str, ...] = ()
) -> str:
    """Streamlit's own needs, Plaid Link's documented origins, and nothing else.

    Scripts: our origin, Plaid's, components v2 (blob modules) and the page's own inline scripts by hash
    (``script_hashes``): no ``'unsafe-inline'``. Styles keep it: Streamlit's emotion CSS is injected at run time.
    """
    plaid = " ".join(PLAID_ORIGINS + extra_origins)
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *script_hashes, "'wasm-unsafe-eval' blob:", plaid]),
            "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
            "font-src 'self' data: https://fonts.gstatic.com",
            "img-src 'self' data: blob:",
            " ".join(["connect-src 'self'", *websockets, plaid]),  # never bare ws:/wss: (a socket to any host)
            f"frame-src 'self' {plaid}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# Streamlit 1.67 serves its content-hashed JS/CSS bundles under /static/ as "public, immutable, max-age=1y"
# (streamlit/web/server/starlette/starlette_static_routes.py); only those may sit in a cache. Everything
# else (the page, health checks, media downloads, our routes, Streamlit's own "no-cache" answers) is no-store.
STATIC_ASSET_PREFIX = "/static/"


def _keeps_cache_control(path: str, status: int, cache_control: bytes | None) -> bool:
    """A hashed bundle keeps Streamlit's caching; so does its 304, whose headers would overwrite the cached copy's."""
    if not path.startswith(STATIC_ASSET_PREFIX):
        return False
    return status == 304 or (cache_control is not None and b"immutable" in cache_control.lower())


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
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in ours if h[0] not in present)
                cache = next((value for name, value in headers if name.lower() == b"cache-control"), None)
                if not _keeps_cache_control(scope["path"], message["status"], cache):
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
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
