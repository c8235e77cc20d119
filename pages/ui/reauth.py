"""What a sensitive action asks for inside its form: the password, and the two-factor code when it is on."""

from __future__ import annotations

import streamlit as st


def proof_inputs(two_factor: bool, key: str) -> tuple[str, str | None]:
    """The password field (and the code field with two-factor on); call inside an ``st.form``."""
    password = st.text_input(
        "Your password", type="password", max_chars=1024, key=f"{key}_password", autocomplete="current-password"
    )
    code = (
        st.text_input("Two-factor code (or a recovery code)", max_chars=64, key=f"{key}_code") if two_factor else None
    )
    return password, code
