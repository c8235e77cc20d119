"""Who is signed in: the session cookie checked against the server on every rerun."""

from __future__ import annotations

import uuid

import streamlit as st

from pages.ui.state import container
from services import sessions
from services.client_address import client_address
from services.sessions import SessionView
from services.web import session_cookie_name


def read_cookie() -> str | None:
    """The session token from the HttpOnly cookie (tests replace this seam: AppTest has no cookies)."""
    name = session_cookie_name(container().settings.secure_cookies)
    try:
        value = st.context.cookies.get(name)
    except Exception:  # no browser behind this run
        return None
    return value if isinstance(value, str) and value else None


def client_ip() -> str:
    """The visitor's address: the connection's, or X-Forwarded-For's as far as FINSYNC_PROXY_HOPS trusts it."""
    try:
        # every line, in order (services/web.py says why)
        peer, forwarded = st.context.ip_address, ", ".join(st.context.headers.get_all("X-Forwarded-For")) or None
        if peer is None and st.context.headers.get("Host"):
            peer = "127.0.0.1"  # Streamlit hides a loopback peer; the route records any loopback as 127.0.0.1 too
    except Exception:
        return ""
    return client_address(peer, forwarded, container().settings.proxy_hops)[:64]


def user_agent() -> str:
    try:
        return str(st.context.headers.get("User-Agent", ""))[:256]
    except Exception:
        return ""


def sign_out_here(farewell: str | None = None) -> None:
    """End this browser's session on the server, forget its state and cookie, and draw the app again signed out
    (``farewell``: what the sign-in page then says happened)."""
    if token := read_cookie():
        sessions.sign_out(container(), token)
    st.session_state.clear()
    st.session_state["clear_cookie"] = True
    if farewell:
        st.session_state["farewell"] = farewell
    st.rerun()


def current_session(*, touch: bool = True) -> SessionView | None:
    """Checked once per rerun; revoked, expired or disabled sessions come back as None. ``touch``: see
    `sessions.current_user`."""
    return sessions.current_user(container(), read_cookie(), touch=touch)


def still_signed_in(uid: uuid.UUID) -> None:
    """A fragment's rerun skips the entry script's check: a session ended elsewhere stops the page at once (the
    full rerun shows sign-in). A fragment that reruns on a timer is not the user's activity: a tab left open on a
    refreshing page still signs out after the idle timeout."""
    view = current_session(touch=False)
    if view is None or view.user.id != uid:
        st.rerun(scope="app")


def require_user() -> SessionView:
    """Every signed-in page starts here; without a live session it stops with a sign-in prompt."""
    view = current_session()
    if view is None:
        st.warning("Your session has ended. Sign in again.")
        st.stop()
    return view


def require_admin() -> SessionView:
    """Admins with two-factor on only (checked on every rerun; the admin services check it again)."""
    view = require_user()
    if view.user.role != "admin":
        st.error("This page is for administrators.")
        st.stop()
    if not view.user.totp_enabled:
        st.warning("The admin page needs two-factor sign-in. Turn it on in Settings → Two-factor.")
        st.page_link("settings.py", label="Open Settings", icon=":material/settings:")
        st.stop()
    return view
