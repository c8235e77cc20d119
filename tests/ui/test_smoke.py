"""A visitor who is not signed in sees only the public pages."""

from __future__ import annotations

import pytest

from pages.ui import session as ui_session
from tests.ui.conftest import AppFactory


def test_visitor_sees_sign_in(app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_session, "read_cookie", lambda: None)
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Sign in to finsync"
    for page in ("register.py", "forgot_password.py"):
        at.switch_page(page).run()
        assert not at.exception
    with pytest.raises(ValueError):
        at.switch_page("settings.py").run()
