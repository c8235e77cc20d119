"""Shared by the account pages' AppTests (sign-in, settings, admin): a browser's cookie, form buttons, what is said."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pages.ui import session as ui_session


def submit(at: AppTest, label: str) -> AppTest:
    """Click the (form) button with this label and rerun."""
    button = next(b for b in at.button if b.label == label)
    return button.click().run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "success", "warning", "info") for e in getattr(at, kind)]
    parts += [t.value for t in at.title] + [m.value for m in at.markdown]
    return "\n".join(str(p) for p in parts)


def signed_in_as(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setattr(ui_session, "read_cookie", lambda: token)
