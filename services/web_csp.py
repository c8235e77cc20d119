"""The Content-Security-Policy finsync serves: Streamlit's needs, Plaid Link's origins, the page's own socket, and
the page's inline scripts by hash."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from services.container import Container

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
