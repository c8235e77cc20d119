"""The finsync server: Streamlit app plus our HTTP routes and security headers (``streamlit run app.py``)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import streamlit as st
from starlette.middleware import Middleware
from streamlit import config as st_config
from streamlit.errors import StreamlitSecretNotFoundError

from services import keys
from services.config import get_settings, load_settings
from services.container import Container, build_container
from services.demo_bank_runtime import stop_demo_banks
from services.errors import FinsyncError
from services.logs import configure_logging
from services.scheduler import stop_scheduler
from services.settings import settings_in_sections
from services.sync import start_scheduler
from services.web import auth_routes, download_route, health_route, webhook_route
from services.web_csp import inline_script_hashes, link_origins
from services.web_headers import SecurityHeadersMiddleware

# The page Streamlit serves: its inline scripts are allowed by hash in the CSP (no 'unsafe-inline' for scripts).
STREAMLIT_PAGE = Path(st.__file__).parent / "static" / "index.html"


@lru_cache(maxsize=1)
def container() -> Container:
    return build_container()


def _export_streamlit_secrets() -> None:
    """Put top-level Streamlit secrets (Community Cloud's Secrets, `.streamlit/secrets.toml`) into the environment,
    where the settings are read. Streamlit does that only when something first reads ``st.secrets``, and
    `streamlit run` imports this file before it does: without this the app started on its defaults."""
    try:
        values = st.secrets.to_dict()
    except StreamlitSecretNotFoundError as exc:
        if getattr(exc, "error_id", None) != "no-secrets-found":  # a file that is there but cannot be read
            raise FinsyncError(f"Streamlit secrets: {exc}") from None
        return
    if problem := settings_in_sections(values):
        raise FinsyncError(f"Streamlit secrets: {problem}")


def _base_url_follows_port() -> str | None:
    """Without FINSYNC_BASE_URL, email links and demo webhooks go to the port this server listens on.

    Returns the operator's public URL, or None when they set none (each request's Host then names the page).
    """
    settings = load_settings(create_secrets=False)  # a refused start writes nothing (build_container checks first)
    if "base_url" in settings.model_fields_set:
        return settings.base_url
    os.environ["FINSYNC_BASE_URL"] = f"http://localhost:{st_config.get_option('server.port')}"
    get_settings.cache_clear()
    return None


def _distrust_forwarded_headers() -> None:
    """The server underneath (uvicorn, started by Streamlit) takes X-Forwarded-For and X-Forwarded-Proto from any
    peer on this machine (an SSH tunnel, a local TLS terminator, another user) as the client's address and
    scheme, which would escape the per-address sign-in limit and forge the addresses in the audit log and the
    session list. FINSYNC_PROXY_HOPS alone decides how far that header is trusted (services/client_address.py).
    uvicorn reads its setting before it imports this file, but wraps the app in that middleware after: so the
    wrapper is made a no-op here (tests/e2e/test_auth_browser.py proves a spoofed header is not believed)."""
    import uvicorn.config

    def unwrapped(app: Any, trusted_hosts: Any = None) -> Any:
        return app

    uvicorn.config.ProxyHeadersMiddleware = unwrapped  # type: ignore[assignment,misc]


configure_logging()  # JSON lines on stderr for finsync's loggers (FINSYNC_LOG_LEVEL), before anything logs

_distrust_forwarded_headers()
try:
    _export_streamlit_secrets()
    _public_url = _base_url_follows_port()
    _c = container()
except FinsyncError as exc:
    print(f"finsync: cannot start: {exc}", file=sys.stderr)
    sys.exit(2)

# Streamlit signs its XSRF cookie with this; derive it so every replica agrees (CONVENTIONS section 3).
st_config.set_option("server.cookieSecret", keys.derive(_c.settings.secret_bytes, "streamlit-cookie").hex())

# The sync bot: one scheduler thread per server process, running with or without a browser open.
start_scheduler(_c, tick=_c.settings.sync_tick_seconds)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """On shutdown the scheduler gets up to 10 s to finish the job in hand and release its lease (one cut off is
    retried once the lease expires), then the demo bank this process serves stops."""
    yield
    await asyncio.to_thread(stop_scheduler)
    banks = stop_demo_banks()
    logging.getLogger("finsync.app").info("stopped: the scheduler, and %d demo bank(s)", banks)


app = st.App(
    "pages/navigation.py",
    lifespan=lifespan,
    routes=[health_route(container), webhook_route(container), *auth_routes(container), download_route(container)],
    middleware=[
        Middleware(
            SecurityHeadersMiddleware,
            https=_c.settings.secure_cookies,
            extra_origins=link_origins(_c),
            public_url=_public_url,
            script_hashes=inline_script_hashes(
                STREAMLIT_PAGE.read_bytes().decode("utf-8")
            ),  # as served: no newline rewriting
        )
    ],
)
