"""AppTest helpers: run the real entry script against a test database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages.ui import state
from services.container import Container
from tests.integration.auth_support import fast_hashing  # noqa: F401 - fixture used by the UI tests

ROOT = Path(__file__).resolve().parents[2]
ENTRY = str(ROOT / "pages" / "navigation.py")
AppFactory = Callable[[], AppTest]


@pytest.fixture
def app(container: Container, monkeypatch: pytest.MonkeyPatch) -> AppFactory:
    """A factory of AppTests whose process-wide container is the test's container."""
    state.container.clear()
    monkeypatch.setattr(state, "build_container", lambda: container)

    def make() -> AppTest:
        return AppTest.from_file(ENTRY, default_timeout=30)

    return make
