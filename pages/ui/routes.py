"""The pages a signed-in person has, by path: a signed-out visit to one (a bookmark, a reload after the session
ran out) signs in right there, then opens it, instead of Streamlit's "Page not found"."""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st

# url_path (from the page's file name) -> title. Admin is left out: who may open it is only known once signed in.
PRIVATE = {
    "accounts": "Accounts",
    "transactions": "Transactions",
    "sync_history": "Sync history",
    "settings": "Settings",
}


def asked_private_page() -> str | None:
    """The url_path of the private page the browser asked for, if it did (never anything else from the URL)."""
    last = urlsplit(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in PRIVATE else None
