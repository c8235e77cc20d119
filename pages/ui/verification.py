"""The reminder an unverified user sees where a verified address is needed, with the way to get the link again."""

from __future__ import annotations

import streamlit as st

from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError
from services.sessions import SessionView


def verify_reminder(view: SessionView, *, key: str) -> None:
    """Say the address is not verified yet and offer "Send the link again" (nothing when it is verified)."""
    if view.user.email_verified:
        return
    st.warning(
        f"Please verify {md(view.user.email)}: open the link we emailed you. Until then you cannot link a bank.",
        icon=":material/mark_email_unread:",
    )
    if st.button("Send the link again", key=key):
        try:
            auth.resend_verification(container(), view.user.id)
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.success("Sent. Check your inbox.")
