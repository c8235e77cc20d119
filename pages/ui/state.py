"""The one shared container per process, and session accessors for pages (messages kept across a rerun)."""

from __future__ import annotations

import streamlit as st

from pages.ui.text import md
from services.container import Container, build_container


@st.cache_resource(show_spinner=False)
def container() -> Container:
    """Engine, cipher, mailer and clock, built once per process (thread-safe, holds no user data)."""
    return build_container()


def flash(kind: str, message: str) -> None:
    """Keep a message (``kind``: success, info, warning or error) for the next run: ``st.rerun`` would wipe it now."""
    st.session_state.setdefault("flash", []).append((kind, message))


def show_flash() -> None:
    """Messages left by the previous run (Link outcomes, removals): plain text, escaped here and only here."""
    for kind, message in st.session_state.pop("flash", []):
        getattr(st, kind)(md(message))
