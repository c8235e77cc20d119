"""Form pieces shared by pages."""

from __future__ import annotations

import streamlit as st


def new_password_inputs(label: str, key: str) -> tuple[str, str]:
    """A new password and its repetition (inside a form); keys ``{key}_password`` and ``{key}_repeat``."""
    first = st.text_input(label, type="password", max_chars=1024, key=f"{key}_password", autocomplete="new-password")
    again = st.text_input(
        f"Repeat {label.lower()}", type="password", max_chars=1024, key=f"{key}_repeat", autocomplete="new-password"
    )
    return first, again


def passwords_match(first: str, again: str) -> bool:
    """Say so when the two typed passwords differ."""
    if first != again:
        st.error("The two passwords differ.")
        return False
    return True
