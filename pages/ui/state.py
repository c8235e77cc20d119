"""The one shared container per process, and session accessors for pages (messages kept across a rerun)."""

from __future__ import annotations

import time

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


GRACE_SECONDS = 30.0  # a message stays this long through runs that bring none of their own
_now = time.monotonic  # the grace's clock (tests move it)


def show_flash(*, grace: bool = False) -> None:
    """Messages left by the previous run (Link outcomes, removals): plain text, escaped here and only here.

    They are dropped only once all are on the page (a run cut short by a click shows them on the next one), and
    remembered as shown, so that a rerun the page makes by itself can keep them (``flash_again``). With ``grace``
    (a page that reruns by itself), a run with no message of its own within ``GRACE_SECONDS`` of them shows them
    again: a rerun no code of ours asked for must not take them away before anyone could read them."""
    now = _now()
    messages = list(st.session_state.get("flash", []))
    if messages:
        st.session_state["flash_shown_at"] = now
    elif grace and now - st.session_state.get("flash_shown_at", -GRACE_SECONDS) < GRACE_SECONDS:
        messages = list(st.session_state.get("flash_shown", []))
    st.session_state["flash_shown"] = messages
    with st.container():  # one place on the page however many there are: what follows keeps its identity (an
        for kind, message in messages:  # open popover stays open when a message comes or goes)
            getattr(st, kind)(md(message))
    st.session_state.pop("flash", None)


KEEP_AT_MOST = 3


def flash_again(*said: tuple[str, str]) -> None:
    """Before a rerun the page makes by itself (no click came in between, so the reader may not have seen the last
    of what it said): keep what the page said before, then ``said`` (``(kind, message)`` pairs)."""
    kept = [m for m in st.session_state.get("flash_shown", []) if m not in said]
    st.session_state["flash"] = [*kept, *said][-KEEP_AT_MOST:]  # a tab left open does not pile them up
