"""The Plaid Link component (components v2, runs in the page so Link's overlay is full-screen).

It loads Link's script from the URL the service gives (Plaid's CDN, or the demo bank's stand-in),
opens Link with a link token, and hands ``public_token`` plus metadata, or the exit error, back to
Python. The access token never reaches the browser: the exchange happens in services/banking.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

_JS = (Path(__file__).with_name("plaid_link.js")).read_text(encoding="utf-8")
_CSS = (
    ".finsync-link button{font:inherit;padding:.45rem .9rem;border-radius:.5rem;border:1px solid #999;cursor:pointer}"
)
_component = st.components.v2.component("finsync_plaid_link", js=_JS, css=_CSS, html='<div class="finsync-link"></div>')


def _ignore() -> None:
    """Trigger values arrive with the rerun they cause; the page reads them from the return value."""


def plaid_link(
    *,
    link_token: str,
    script_url: str,
    label: str,
    key: str,
    received_redirect_uri: str | None = None,
) -> dict[str, Any] | None:
    """Mount Link's button; returns ``{"kind": "success"|"exit", ...}`` on the rerun Link finishes, else None."""
    result = _component(
        key=key,
        data={
            "link_token": link_token,
            "script_url": script_url,
            "label": label,
            "received_redirect_uri": received_redirect_uri,
        },
        on_result_change=_ignore,
    )
    value = getattr(result, "result", None)
    return value if isinstance(value, dict) else None
