"""The one shared container per process, and session accessors for pages."""

from __future__ import annotations

import streamlit as st

from services.container import Container, build_container


@st.cache_resource(show_spinner=False)
def container() -> Container:
    """Engine, cipher, mailer and clock, built once per process (thread-safe, holds no user data)."""
    return build_container()
