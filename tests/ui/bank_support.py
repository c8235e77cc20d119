"""Shared by the bank pages' AppTests: the app wired to the demo bank, opening pages, reading what they show."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from models import PlaidItem
from pages.ui import session as ui_session
from pages.ui import state
from services import banking, sync
from services.db import unit_of_work
from tests.integration.auth_support import make_user, sign_in
from tests.integration.conftest_bank import Bank
from tests.ui.conftest import ENTRY


def wire_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    """The app's process-wide container is the bank test's container (use it as the ``bank_app`` fixture)."""
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


def shown_cells(element: Any) -> Any:
    """A grid's cells as the browser shows them (a styled grid's display values; the raw values are what it sorts)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    styled = element.proto.arrow_data.styler.display_values
    return convert_arrow_bytes_to_pandas_df(styled) if styled else element.value


def everything(at: AppTest) -> str:
    kinds = ("error", "success", "warning", "info", "caption", "subheader", "markdown", "status")
    return "\n".join(str(getattr(e, "label", None) or getattr(e, "value", "")) for k in kinds for e in getattr(at, k))


def rename_bank(bank_app: Bank, item_id: Any, name: str) -> None:
    """Give a linked bank the institution name a test needs (as a bank could send it)."""
    with unit_of_work(bank_app.c.engine) as session:
        row = session.get(PlaidItem, item_id)
        assert row is not None
        row.institution_name = name


def signed_in(bank_app: Bank, monkeypatch: pytest.MonkeyPatch, name: str, **kw: Any) -> Any:
    """A new user whose browser carries a live session cookie."""
    user = make_user(bank_app.c, name, **kw)
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(bank_app.c, name))
    return user


def two_logins_preparing(bank: Bank, user_id: uuid.UUID) -> list[list[str]]:
    """Two logins at First Demo Bank, both synced and told by the bank it is still preparing; each one's account
    digits (they differ: the demo bank gives each login its own numbers)."""
    items = [bank.link(user_id, "ins_demo_1", login) for login in ("user_good", "user_yuppie")]
    for item in items:
        bank.demo.set_ready(bank.plaid_item_id(item.id), False)
        assert sync.sync_item(bank.c, user_id, item.id).status == "preparing"
    masks = {i.id: [a.mask for a in i.accounts if a.mask] for i in banking.list_items(bank.c, user_id)}
    assert all(masks[i.id] for i in items), masks
    return [masks[i.id] for i in items]
