"""The finsync server: Streamlit app plus our HTTP routes and security headers (``streamlit run app.py``)."""

from __future__ import annotations

import sys
from functools import lru_cache

import streamlit as st
from starlette.middleware import Middleware

from services.config import load_settings
from services.container import Container, build_container
from services.errors import FinsyncError
from services.web import SecurityHeadersMiddleware, health_route


@lru_cache(maxsize=1)
def container() -> Container:
    return build_container()


try:
    _settings = load_settings(create_secrets=False)
    container()
except FinsyncError as exc:
    print(f"finsync: cannot start: {exc}", file=sys.stderr)
    sys.exit(2)

app = st.App(
    "pages/navigation.py",
    routes=[health_route(container)],
    middleware=[Middleware(SecurityHeadersMiddleware, https=_settings.secure_cookies)],
)
