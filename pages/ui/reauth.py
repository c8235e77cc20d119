"""What a sensitive action asks for inside its form: the password, and the two-factor code when it is on."""

from __future__ import annotations

import uuid

import streamlit as st

from pages.ui.session import current_session
from services.sessions import SessionView


def proof_inputs(two_factor: bool, key: str) -> tuple[str, str | None]:
    """The password field (and the code field with two-factor on); call inside an ``st.form``."""
    password = st.text_input(
        "Your password", type="password", max_chars=1024, key=f"{key}_password", autocomplete="current-password"
    )
    code = (
        st.text_input("Two-factor code (or a recovery code)", max_chars=64, key=f"{key}_code") if two_factor else None
    )
    return password, code


def take_proof(key: str, uid: uuid.UUID) -> tuple[SessionView, str, str | None] | None:
    """In the form's submit callback: the live session, with the password (and code) ``proof_inputs`` holds, those
    fields emptied and no others; None, acting on nothing, when ``uid`` is no longer signed in here.

    A callback runs before the page, so before its sign-in check: it asks for itself (a session revoked or timed
    out since the form was drawn acts no more). A form's ``clear_on_submit`` would empty every field (an address,
    dates), and in the browser it does so after the page has drawn, whatever value the page gives them: a refusal
    would leave the user retyping all of it."""
    password = take_secret(f"{key}_password")
    code = take_secret(f"{key}_code") if f"{key}_code" in st.session_state else None  # no code field: 2FA off
    view = current_session()
    if view is None or view.user.id != uid:
        return None  # the page that follows stops with "Your session has ended"
    return view, password, code


def take_secret(key: str) -> str:
    """In a form's submit callback: the value of the secret field ``key``, emptied on the screen, so a password or
    code that was refused is not left there (nor one that was used)."""
    value = str(st.session_state.get(key) or "")
    st.session_state[key] = ""
    return value
