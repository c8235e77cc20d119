"""HTTP routes and middleware served beside the Streamlit app by ``st.App`` (no Streamlit here)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.container import Container
from services.db import check_database
from services.errors import FinsyncError

# Plaid Link's documented CSP needs (plaid.com/docs/link/web/#content-security-policy).
PLAID_ORIGINS = ("https://cdn.plaid.com", "https://*.plaid.com")


def content_security_policy(extra_origins: tuple[str, ...] = ()) -> str:
    """Streamlit's own needs, Plaid Link's documented origins, and nothing else."""
    plaid = " ".join(PLAID_ORIGINS + extra_origins)
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval' {plaid}",
            "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
            "font-src 'self' data: https://fonts.gstatic.com",
            "img-src 'self' data: blob:",
            f"connect-src 'self' ws: wss: {plaid}",
            f"frame-src 'self' {plaid}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, Referrer-Policy, frame protection, no-store and (under HTTPS) HSTS."""

    def __init__(self, app: ASGIApp, *, https: bool = False, extra_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(extra_origins).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin-allow-popups"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers.extend(h for h in self.headers if h[0] not in present)
                if scope["path"].startswith(("/auth/", "/healthz")) or b"cache-control" not in present:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def health_route(get_container: Callable[[], Container]) -> Route:
    """``GET /healthz``: 200 when the database answers, 503 otherwise (no details leak)."""

    async def healthz(_request: Request) -> JSONResponse:
        try:
            check_database(get_container().engine)
        except FinsyncError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return Route("/healthz", healthz, methods=["GET"])
