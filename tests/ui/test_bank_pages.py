"""Accounts, Transactions, Sync history and notification settings as a person uses them (AppTest).

The Link component itself runs only in a browser (tests/e2e); here its seam hands the page a real
public token made by the demo bank, and everything after it is real: exchange, storage, sync.
"""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import pages.ui.plaid_link as plaid_link_module
from pages.ui import session as ui_session
from pages.ui import state
from services import banking, sync
from tests.integration.auth_support import make_user, sign_in
from tests.integration.conftest_bank import Bank
from tests.ui.conftest import ENTRY

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def bank_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    state.container.clear()
    monkeypatch.setattr(state, "build_container", lambda: bank.c)
    return bank


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def everything(at: AppTest) -> str:
    kinds = ("error", "success", "warning", "info", "caption", "subheader", "markdown", "status")
    return "\n".join(str(getattr(e, "label", None) or getattr(e, "value", "")) for k in kinds for e in getattr(at, k))


def test_link_sync_and_browse(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = make_user(c, "ann")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "ann"))

    at = open_page("accounts.py")
    assert "No bank linked yet" in everything(at)
    at = click(at, "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_2")  # type: ignore[union-attr]
    result: dict[str, Any] = {"kind": "success", "public_token": public, "metadata": {}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: result)
    at.run()
    assert not at.exception, at.exception
    assert "Linked Maple Credit Union" in everything(at)
    [item] = banking.list_items(c, user.id)

    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    at = click(at, "Sync now")
    assert not at.exception, at.exception
    assert "Maple Credit Union is up to date" in everything(at)
    assert "Last synced" in everything(at)

    at = open_page("transactions.py")
    grid = at.dataframe[0].value
    assert len(grid) > 20 and {"Date", "Name", "Amount", "Category"} <= set(grid.columns)
    assert grid["Amount"].str.contains(r"^-?\$", regex=True).all()

    at = open_page("sync_history.py")
    runs = at.dataframe[0].value
    assert (
        list(runs["Result"]) == ["ok"]
        and runs["Added"].iloc[0] == len(sync.list_runs(c, user.id)) * runs["Added"].iloc[0]
    )

    # Removing the bank, keeping nothing, leaves no transactions behind.
    banking.remove_item(c, user.id, item.id, keep_history=False)
    at = open_page("transactions.py")
    assert "No transactions yet" in everything(at)


def test_link_exit_is_reported_and_nothing_is_linked(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = make_user(c, "bea")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "bea"))
    at = open_page("accounts.py")
    at = click(at, "Link a bank")
    exit_result = {"kind": "exit", "error": {"error_code": "INVALID_CREDENTIALS", "display_message": None}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: exit_result)
    at.run()
    assert not at.exception
    assert at.warning and not banking.list_items(c, user.id)


def test_unverified_user_cannot_start_linking(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    make_user(c, "cal", verified=False)
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "cal"))
    at = click(open_page("accounts.py"), "Link a bank")
    assert "Verify your email address before linking a bank." in everything(at)


def test_notification_settings_are_saved(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = make_user(c, "dee")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "dee"))
    at = open_page("settings.py")
    at.number_input(key="n_large").set_value(250.0)
    at.checkbox(key="n_digest").uncheck()
    at = click(at, "Save notification settings")
    assert "Saved." in everything(at)
    prefs = sync.get_notification_prefs(c, user.id)
    assert prefs.large_transaction_minor == 25_000 and prefs.digest is False
