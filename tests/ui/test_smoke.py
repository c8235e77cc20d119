"""Every page renders for a visitor without an exception."""

from __future__ import annotations

from collections.abc import Callable

from streamlit.testing.v1 import AppTest


def test_home_renders(app: Callable[[], AppTest]) -> None:
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "finsync"
    assert "demo" in at.caption[0].value
