"""Accounts, Transactions, Sync history and notification settings as a person uses them (AppTest).

The Link component itself runs only in a browser (tests/e2e); here its seam hands the page a real
public token made by the demo bank, and everything after it is real: exchange, storage, sync.
"""

from __future__ import annotations

import dataclasses
import types
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

import pages.ui.plaid_link as plaid_link_module
from models import BankAccount, PlaidItem
from pages.ui.text import md, unbroken
from services import banking, kept_history, ledger, ledger_listing, sync
from services.db import unit_of_work
from services.demo_bank.links import PASSWORD as BANK_PASSWORD
from services.demo_bank.links import link_accounts
from tests.integration.auth_support import PASSWORD
from tests.integration.conftest_bank import Bank
from tests.ui.bank_support import click, everything, open_page, rename_bank, shown_cells, signed_in, wire_app
from tests.ui.conftest import ENTRY

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def bank_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    return wire_app(bank, monkeypatch)


def test_link_sync_and_browse(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")

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
    grid = shown_cells(at.dataframe[0])
    assert len(grid) > 20 and {"Date", "Name", "Amount", "Category"} <= set(grid.columns)
    assert grid["Amount"].str.contains(r"^-?\$", regex=True).all()

    at = open_page("sync_history.py")
    runs = at.dataframe[0].value
    assert (
        list(runs["Result"]) == ["synced"]
        and list(runs["Why"]) == ["you pressed Sync now"]
        and "What happened" not in runs.columns  # it went well: nothing to explain
        and runs["Added"].iloc[0] == len(sync.list_runs(c, user.id)) * runs["Added"].iloc[0]
    )

    # Removing the bank, keeping nothing, leaves no transactions behind, nor any sync of it.
    banking.remove_item(c, user.id, item.id, keep_history=False)
    at = open_page("transactions.py")
    assert "No transactions yet" in everything(at)
    assert "No syncs yet" in everything(open_page("sync_history.py"))


def test_link_exit_is_reported_and_nothing_is_linked(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "bea")
    at = open_page("accounts.py")
    at = click(at, "Link a bank")
    exit_result = {"kind": "exit", "error": {"error_code": "INVALID_CREDENTIALS", "display_message": None}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: exit_result)
    at.run()
    assert not at.exception
    assert at.warning and not banking.list_items(c, user.id)


@pytest.mark.parametrize(
    ("login", "told"),
    [
        ("user_login_required", "Your bank asked you to sign in again before it shared your accounts"),
        ("user_institution_down", "Your bank is not responding right now"),
    ],
)
def test_a_bank_that_fails_right_after_link_is_explained_in_plain_words_and_nothing_is_linked(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, login: str, told: str
) -> None:
    """Link succeeded but the bank refused to hand over the accounts: the person reads what happened and what to do
    (link again now, or later), not Plaid's wording about an "item" whose "login details have changed"."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "bex")
    at = click(open_page("accounts.py"), "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_2", username=login)  # type: ignore[union-attr]
    result: dict[str, Any] = {"kind": "success", "public_token": public, "metadata": {}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: result)
    at.run()
    assert not at.exception, at.exception
    said = " ".join(e.value for e in at.error).replace("\\", "")
    assert told in said and "nothing was linked" in said, said
    assert "this item" not in said and "financial institution" not in said, said  # Plaid's own sentences
    assert not banking.list_items(c, user.id)


def test_unverified_user_is_shown_the_way_to_verify_instead_of_a_link_button(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in(bank_app, monkeypatch, "cal", verified=False)
    at = open_page("accounts.py")
    assert not [b for b in at.button if b.label == "Link a bank"]
    assert "Until then you cannot link a bank." in everything(at)
    at = click(at, "Send the link again")  # right here, not only on Home
    assert "Sent. Check your inbox." in everything(at)


def test_notification_settings_are_saved(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "dee")
    at = open_page("settings.py")
    at.number_input(key="n_large").set_value(250.0)
    at.checkbox(key="n_digest").uncheck()
    at = click(at, "Save notification settings")
    assert "Saved." in everything(at)
    prefs = sync.get_notification_prefs(c, user.id)
    assert prefs.large_transaction_minor == 25_000 and prefs.digest is False
    # an amount the box shows as 0.00 is off, as 0 is: not refused as "not more than zero", not an alert below 0
    at.number_input(key="n_large").set_value(0.004)
    at.number_input(key="n_low").set_value(0.004)
    at = click(at, "Save notification settings")
    assert "Saved." in everything(at) and not at.error
    prefs = sync.get_notification_prefs(c, user.id)
    assert (prefs.large_transaction_minor, prefs.low_balance_minor) == (None, None)


class FakeGrid:
    """``st.dataframe`` for the transactions grid, remembering a selection per widget key like Streamlit."""

    def __init__(self, real: Any) -> None:
        self.real, self.picked, self.key, self.data = real, {}, "", None  # type: ignore[var-annotated]

    def __call__(self, data: Any, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
        if not (key or "").startswith("tx_grid_"):
            return self.real(data, *args, key=key, **kwargs)
        self.key, self.data = str(key), getattr(data, "data", data)  # a Styler's frame (amounts shown as money)
        default = kwargs.get("selection_default")
        if key not in self.picked and default:  # a grid drawn for the first time starts with its default selection
            self.picked[str(key)] = list(default["selection"]["rows"])
        return types.SimpleNamespace(selection=types.SimpleNamespace(rows=self.picked.get(key, [])))

    def click(self, row: int) -> None:
        self.picked[self.key] = [row]


def test_an_edit_lands_on_the_transaction_shown_even_when_a_sync_adds_rows_meanwhile(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")
    item = bank_app.link(user.id)
    sync.sync_item(c, user.id, item.id)
    grid = FakeGrid(streamlit.dataframe)
    monkeypatch.setattr(streamlit, "dataframe", grid)
    at = open_page("transactions.py")
    grid.click(0)
    at.run()
    first = ledger_listing.list_transactions(c, user.id)[0]
    assert (first.merchant_name or first.name) in at.subheader[0].value

    # While the user types, the bot brings a newer transaction: row 0 is now another one.
    bank_app.demo.mutate(bank_app.plaid_item_id(item.id), "add", cents=999, name="BRAND NEW", date=date(2031, 1, 1))
    sync.sync_item(c, user.id, item.id)
    assert ledger_listing.list_transactions(c, user.id)[0].name == "BRAND NEW"
    note = next(t for t in at.text_area if t.label == "Note")
    note.input("dinner with Sam")
    at = click(at, "Save")
    assert not at.exception, at.exception
    noted = [
        (t.transaction_id, t.note, t.category_override) for t in ledger_listing.list_transactions(c, user.id) if t.note
    ]
    assert noted == [(first.transaction_id, "dinner with Sam", None)]  # the bank's category is not frozen

    # Another tab saves an edit of the same transaction; this form, drawn before it, must not overwrite it.
    sync.edit_transaction(c, user.id, first.transaction_id, note="from the other tab")
    next(t for t in at.text_area if t.label == "Note").input("stale words")
    at = click(at, "Save")
    assert ledger.STALE_EDIT in [e.value for e in at.error]
    assert sync.get_transaction(c, user.id, first.transaction_id).note == "from the other tab"
    assert next(t for t in at.text_area if t.label == "Note").value == "from the other tab"  # shown as stored now
    assert [c.value for c in at.code] == ["Note: stale words"]  # and what was typed is not lost: it can be copied

    # A saved category shows in the list at once, not after the next click.
    next(t for t in at.text_input if t.label == "Category").input("Gifts")
    at = click(at, "Save")
    assert not at.exception and "Saved." in everything(at)
    assert "Gifts" in list(grid.data["Category"])


def test_sync_history_shows_a_failure_only_until_that_bank_synced_again(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "dee")
    item = bank_app.link(user.id)
    bank_app.demo.set_fault(bank_app.plaid_item_id(item.id), "login_required")
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "login_required"
    at = open_page("sync_history.py")
    assert [e.value for e in at.error] and "sign in again" in at.error[0].value
    assert list(at.dataframe[0].value["Result"]) == ["needs sign-in"]
    assert [link.proto.page for link in at.get("page_link")] == ["accounts"]  # where Repair is

    bank_app.demo.bank.items[bank_app.plaid_item_id(item.id)].error_code = None  # repaired at the bank
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    at = open_page("sync_history.py")
    assert not at.error and not at.get("page_link")  # the old failure is history now, not an alarm
    table = at.dataframe[0].value
    assert list(table["Result"]) == ["synced", "needs sign-in"]
    assert table["What happened"].iloc[0] == "" and "sign in again" in table["What happened"].iloc[1]


def test_sync_history_lists_transactions_set_aside_as_unreadable(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import plaid_mapping

    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "eve")
    item = bank_app.link(user.id)
    real = plaid_mapping.map_transaction
    victim_raw = sorted(bank_app.demo.truth(bank_app.plaid_item_id(item.id)), key=lambda t: t["transaction_id"])[0]
    victim = victim_raw["transaction_id"]

    def unreadable(t: Any) -> Any:
        if t.get("transaction_id") == victim:
            raise ValueError("amount is not an amount")
        return real(t)

    monkeypatch.setattr(plaid_mapping, "map_transaction", unreadable)
    assert sync.sync_item(c, user.id, item.id, explicit=True).error_code == "TRANSACTIONS_SET_ASIDE"
    at = open_page("sync_history.py")
    assert [e.label for e in at.expander] == ["Transactions your bank sent that finsync could not read (1)"]
    aside = at.dataframe[0].value
    assert list(aside["Why"]) == ["ValueError: amount is not an amount"] and aside["Name"].iloc[0]
    statement = -Decimal(str(victim_raw["amount"])) + 0  # shown as the ledger shows amounts: money out negative
    assert aside["Amount"].iloc[0] == f"{statement} {victim_raw['iso_currency_code']}"


def test_transactions_download_as_csv_is_the_contract_file_and_is_audited(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv
    import io

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from pages.ui import session as ui_session
    from services import audit, sessions
    from services.export import COLUMNS
    from services.web import DOWNLOAD_GONE, download_route
    from tests.integration.auth_support import make_user, sign_in

    c = bank_app.c
    user = make_user(c, "fay")
    cookie = sign_in(c, "fay")  # one session throughout: the file is for it alone
    monkeypatch.setattr(ui_session, "read_cookie", lambda: cookie)
    item = bank_app.link(user.id)
    sync.sync_item(c, user.id, item.id)
    at = open_page("transactions.py")
    at.date_input(key="export_from").set_value(date(2031, 1, 2))
    at.date_input(key="export_to").set_value(date(2031, 1, 1))
    at = click(at, "Prepare the file")
    assert "start date is after the end date" in everything(at) and "export_file" not in at.session_state
    assert (at.date_input(key="export_from").value, at.date_input(key="export_to").value) == (
        date(2031, 1, 2),
        date(2031, 1, 1),
    )  # kept as typed, to be put right
    at.date_input(key="export_from").set_value(None)
    at.date_input(key="export_to").set_value(None)
    at.text_input(key="export_password").input("not my password at all")
    at = click(at, "Prepare the file")
    assert "That password is not right." in everything(at) and "export_file" not in at.session_state
    at.text_input(key="export_password").input(PASSWORD)
    at = click(at, "Prepare the file")
    token, n, _ = at.session_state["export_file"]
    assert f'href="/download/{token}"' in at.html[0].proto.body  # a link to our own route, not Streamlit's /media

    http = TestClient(Starlette(routes=[download_route(lambda: c)]))
    got = http.get(f"/download/{token}", cookies={"finsync_session": cookie})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == 'attachment; filename="finsync-transactions.csv"'
    table = list(csv.reader(io.StringIO(got.content.decode("utf-8"))))
    assert tuple(table[0]) == COLUMNS and len(table) - 1 == n == len(
        ledger_listing.list_transactions(c, user.id, limit=10**6)
    )
    assert "transactions_exported" in [e.event for e in audit.list_events(c, user.id)]
    # The address alone opens nothing: not without the cookie, not with another session (of another person, or
    # the same person elsewhere), not once this session has signed out.
    make_user(c, "gus")
    for other in ({}, {"finsync_session": sign_in(c, "gus")}, {"finsync_session": sign_in(c, "fay")}):
        refused = TestClient(Starlette(routes=[download_route(lambda: c)]), cookies=other).get(f"/download/{token}")
        assert (refused.status_code, refused.text) == (404, DOWNLOAD_GONE)
    assert http.get(f"/download/{token}x", cookies={"finsync_session": cookie}).status_code == 404
    # A second file refused: the first one's link goes from the page (beside the error it would pass for the new one).
    at.text_input(key="export_password").input("not my password at all")
    at = click(at, "Prepare the file")
    assert "That password is not right." in everything(at) and "export_file" not in at.session_state
    assert not any("/download/" in h.proto.body for h in at.html)
    sessions.sign_out(c, cookie)
    assert http.get(f"/download/{token}", cookies={"finsync_session": cookie}).status_code == 404


def test_a_download_prepared_after_the_session_ended_is_not_made(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prepare the file acts before the page's sign-in check: it checks the session itself, so a browser left open
    after signing out elsewhere (or timing out) gets no file, even with the password typed."""
    from pages.ui import session as ui_session
    from services import audit, sessions
    from tests.integration.auth_support import make_user, sign_in

    c = bank_app.c
    user = make_user(c, "fay")
    cookie = sign_in(c, "fay")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: cookie)
    sync.sync_item(c, user.id, bank_app.link(user.id).id)
    at = open_page("transactions.py")
    at.text_input(key="export_password").input(PASSWORD)
    sessions.sign_out(c, cookie)
    at = click(at, "Prepare the file")
    assert "export_file" not in at.session_state and not at.html
    assert "transactions_exported" not in [e.event for e in audit.list_events(c, user.id)]


def test_a_hostile_institution_name_is_shown_as_text_not_markdown(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security bar G2/L10: bank-supplied text never becomes a link or formatting in Markdown widgets."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "fay")
    item = bank_app.link(user.id)
    bank_app.demo.set_fault(bank_app.plaid_item_id(item.id), "login_required")
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "login_required"
    hostile = "**Evil** [click](javascript:alert(1)) www.evil.example"
    escaped = r"\*\*Evil\*\* \[click\]\(javascript\:alert\(1\)\) www" + "\u2060" + r"\.evil\.example"
    rename_bank(bank_app, item.id, hostile)
    for page in ("accounts.py", "sync_history.py", "home.py"):
        shown = everything(open_page(page))
        assert escaped in shown, page
        assert hostile not in shown, page
    # Removed, its history kept: one kept account is named with its bank where deleting it is offered.
    banking.remove_bank(c, user.id, item.id, keep_history=True, password=PASSWORD, code=None, ip="")
    runs = open_page("sync_history.py").dataframe[0].value  # its runs stay, under the name it had when removed
    assert list(runs["Bank"]) == [hostile + " (removed)"]  # a grid cell is plain text: nothing to escape there
    kept = kept_history.kept_accounts(c, user.id)
    kept_history.delete_kept(c, user.id, [k.id for k in kept[1:]], password=PASSWORD, code=None, ip="")
    with unit_of_work(c.engine) as session:
        account = session.get(BankAccount, kept[0].id)
        assert account is not None
        account.institution_name = hostile  # as the bank named itself when linked
    shown = everything(open_page("accounts.py"))
    assert escaped + r"\: " in shown and hostile not in shown


def test_home_sums_balances_by_kind_and_points_at_a_connection_that_needs_the_user(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "gus")
    at = open_page("home.py")
    assert "No bank linked yet" in everything(at) and not at.metric

    item = bank_app.link(user.id)  # First Demo Bank: checking, savings and a credit card
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    [view] = banking.list_items(c, user.id)
    cash = sum(a.current_minor or 0 for a in view.accounts if a.type == "depository")
    owed = sum(a.current_minor or 0 for a in view.accounts if a.type == "credit")
    assert cash > 0 and owed > 0
    at = open_page("home.py")
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        "Cash (checking and savings)": f"${Decimal(cash) / 100:,.2f}",
        "Owed on cards and loans": f"${Decimal(owed) / 100:,.2f}",
    }
    assert not at.warning
    assert "1 bank, 3 accounts" in everything(at)

    # The user stops sharing the savings account: its last balance is history, not money they have today.
    demo = bank_app.demo.bank.items[bank_app.plaid_item_id(item.id)]
    with bank_app.demo.bank.lock:
        demo.hidden.append("savings")
    bank_app.clock.advance(hours=1)
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    [view] = banking.list_items(c, user.id)
    [savings] = [a for a in view.accounts if a.unshared_since is not None]
    assert savings.type == "depository" and (savings.current_minor or 0) > 0
    at = open_page("home.py")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Cash (checking and savings)"] == f"${Decimal(cash - savings.current_minor) / 100:,.2f}"
    assert "1 bank, 2 accounts · last synced" in everything(at)

    # A second bank not synced yet: the first bank's fresh sync must not stand for both.
    maple = bank_app.link(user.id, "ins_demo_2")
    assert "2 banks, 5 accounts · a bank has not synced yet" in everything(open_page("home.py"))
    bank_app.clock.advance(hours=3)
    assert sync.sync_item(c, user.id, maple.id, explicit=True).status == "ok"
    from pages.ui.format import when

    older = min(s.last_success_at for s in sync.item_sync_status(c, user.id) if s.last_success_at)
    assert older < bank_app.clock() - timedelta(hours=2)  # the first bank's, not the one just synced
    assert f"every bank synced since {unbroken(when(older))}" in everything(open_page("home.py"))

    bank_app.demo.set_fault(bank_app.plaid_item_id(item.id), "login_required")
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "login_required"
    at = open_page("home.py")
    [warning] = at.warning
    assert warning.value.startswith("First Demo Bank:") and "sign in" in warning.value


def test_sync_now_while_the_bot_syncs_says_so_and_the_page_follows_the_bot(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.sync_state import acquire, worker_name

    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "hal")
    item = bank_app.link(user.id)
    with unit_of_work(c.engine) as session:  # the bot's scheduler (alive, in this process) holds the item
        row = session.get(PlaidItem, item.id)
        assert row is not None and acquire(session, row, worker_name("scheduler"), c.clock())
    at = open_page("accounts.py")
    at = click(at, "Sync now")
    assert not at.exception and not at.error  # not a failure
    [info] = at.info
    assert "already syncing" in info.value
    assert "Syncing in the background" in everything(at)  # and the page updates by itself when the bot is done


def test_a_second_press_of_sync_now_right_after_a_good_sync_does_not_sync_again(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click: Streamlit holds the second press until the sync is done, then runs it. It must not start
    a second sync of the bank; a press after a failed sync, or some seconds later, does."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "kim")
    item = bank_app.link(user.id)
    plaid_id = bank_app.plaid_item_id(item.id)
    bank_app.demo.set_fault(plaid_id, "institution_down", times=50)
    at = click(open_page("accounts.py"), "Sync now")
    assert at.error and [r.status for r in sync.list_runs(c, user.id)] == ["failed"]
    assert at.error[0].value.replace("\\", "").startswith(f"{item.institution_name}: ")  # above every card: which bank
    bank_app.demo.clear_faults(plaid_id)
    at = click(at, "Sync now")  # straight after a failure: tried again
    assert [r.status for r in sync.list_runs(c, user.id)] == ["ok", "failed"]
    assert any("is up to date" in s.value for s in at.success)

    said = [s.value for s in at.success if "is up to date" in s.value]
    at = click(at, "Sync now")  # the held second click of a double click
    assert len(sync.list_runs(c, user.id)) == 2
    assert [s.value for s in at.success if "is up to date" in s.value] == said  # the sync's outcome, still
    bank_app.clock.advance(seconds=11)
    at = click(at, "Sync now")  # a press of its own, later
    assert [r.status for r in sync.list_runs(c, user.id)] == ["ok", "ok", "failed"]


def test_sync_now_on_a_bank_still_preparing_its_data_is_news_not_an_error(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A just-linked bank that has not finished gathering its history: the sync did nothing wrong and there is
    nothing to do, so the page says so calmly (not as a red failure) and a later press still syncs."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "noa")
    item = bank_app.link(user.id)
    plaid_id = bank_app.plaid_item_id(item.id)
    bank_app.demo.set_ready(plaid_id, False)
    at = click(open_page("accounts.py"), "Sync now")
    assert not at.exception, at.exception
    assert [r.status for r in sync.list_runs(c, user.id)] == ["preparing"]
    assert not at.error, [e.value for e in at.error]
    said = [i.value for i in at.info if "still preparing" in i.value]
    assert said and said[0].replace("\\", "").startswith(f"{item.institution_name}: "), said
    bank_app.demo.set_ready(plaid_id, True)
    at = click(at, "Sync now")  # the bank is ready now: the next press syncs it
    assert any("is up to date" in s.value for s in at.success)


def test_messages_about_a_bank_show_its_name_as_written(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with Markdown characters (U.S. Bank) is escaped once: the user reads it, not backslashes."""
    user = signed_in(bank_app, monkeypatch, "ivy")
    item = bank_app.link(user.id)
    rename_bank(bank_app, item.id, "U.S. Bank")
    at = click(open_page("accounts.py"), "Sync now")
    done = [e.value for e in at.success if "up to date" in e.value]
    assert done and done[0].startswith(r"U\.S\. Bank is up to date"), done  # renders "U.S. Bank is up to date"


@pytest.mark.parametrize(
    ("browser_zone", "suffix"),
    [("Asia/Tokyo", "JST"), ("../../../etc/passwd", "UTC"), ("Not/AZone", "UTC"), (None, "UTC")],
)
def test_times_are_shown_in_the_browsers_time_zone(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, browser_zone: str | None, suffix: str
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "joy")
    item = bank_app.link(user.id)
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.context = {"timezone": browser_zone}  # what the browser reports; a hostile value falls back to UTC
    at.run()
    at.switch_page("sync_history.py").run()
    assert not at.exception
    [started] = list(at.dataframe[0].value["Started"])
    assert started.endswith(f" {suffix}"), started


@pytest.mark.parametrize("read", [1, 2], ids=["before-the-pages-read", "before-the-polls-read"])
def test_what_the_page_said_stays_when_it_updates_by_itself_after_the_first_sync(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, read: int
) -> None:
    """The bot's first sync of a new bank can end before the page looks, or between its look and its follow-up
    poll: either way the page says so, and "Linked …" does not vanish before anyone could read it."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ivy")
    at = click(open_page("accounts.py"), "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_2")  # type: ignore[union-attr]
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": public})
    real, calls = sync.item_sync_status, []

    def bot_finishes_in_between(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == read:  # the bot syncs the new bank before this read
            for item in banking.list_items(c, user.id):
                assert sync.sync_item(c, user.id, item.id).status == "ok"
        return real(*args, **kwargs)

    monkeypatch.setattr(sync, "item_sync_status", bot_finishes_in_between)
    at.run()
    assert not at.exception, at.exception
    said = [e.value.replace("\\", "") for e in at.success]  # markdown-escaped on the page
    assert said == [
        "Linked Maple Credit Union with 3 accounts.",
        "Maple Credit Union is synced: see Transactions.",
        "Connected.",
    ]
    assert "Syncing in the background" not in everything(at)

    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    at = click(at, "Sync now")  # the next thing the person does: the old news goes
    said = [e.value.replace("\\", "") for e in at.success]
    assert said[1:] == ["Connected."] and said[0].startswith("Maple Credit Union is up to date: 0 new")


def _needing_sign_in(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, name: str, *, first: str | None = None
) -> tuple[Any, Any, str]:
    """A signed-in user whose bank synced once, then failed a sync because the bank wants a sign-in again:
    (user, item, the bank's item id)."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, name)
    if first:  # a bank linked before it, that stays well
        bank_app.link(user.id, first)
    item = bank_app.link(user.id, "ins_demo_2")
    pid = bank_app.plaid_item_id(item.id)
    assert sync.sync_item(c, user.id, item.id).status == "ok"
    bank_app.demo.set_fault(pid, "login_required")
    bank_app.clock.advance(minutes=1)
    assert sync.sync_item(c, user.id, item.id).status == "login_required"
    return user, item, pid


def _bank_headings(at: AppTest) -> list[str]:
    return [h.value for h in at.subheader if h.value in ("First Demo Bank", "Maple Credit Union")]


def test_a_bank_that_needs_the_person_comes_first_on_the_accounts_page(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First Demo Bank, linked first, leads; once Maple Credit Union wants a sign-in again its card (with Repair) is
    on top, where the person looks, and back in its place once repaired."""
    c = bank_app.c
    user, item, pid = _needing_sign_in(bank_app, monkeypatch, "ola", first="ins_demo_1")
    at = open_page("accounts.py")
    assert not at.exception, at.exception
    assert _bank_headings(at) == ["Maple Credit Union", "First Demo Bank"]
    assert [b.label for b in at.button].count("Repair connection") == 1

    bank_app.demo.repair(pid)
    bank_app.clock.advance(minutes=1)
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    assert _bank_headings(at.run()) == ["First Demo Bank", "Maple Credit Union"]


def test_a_repair_the_bank_still_refuses_is_not_greeted_as_connected_again(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Link's update mode finished, but Plaid still reports the item in error (the bank not responding): the page
    said "is connected again" of a connection whose card shows the problem, because it asked only whether a repair
    was still needed."""
    _user, _item, pid = _needing_sign_in(bank_app, monkeypatch, "ned")
    at = click(open_page("accounts.py"), "Repair connection")
    bank_app.demo.repair(pid)
    gw = bank_app.c.plaid
    assert gw is not None
    real = gw.item_get
    monkeypatch.setattr(
        gw, "item_get", lambda token: dataclasses.replace(real(token), error_code="INTERNAL_SERVER_ERROR")
    )
    repaired = {"kind": "success", "public_token": "", "metadata": {}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: repaired)
    at.run()
    assert not at.exception, at.exception
    assert not [s for s in said(at) if "connected again" in s], said(at)
    warned = [w.value.replace("\\", "") for w in at.warning]
    assert [w for w in warned if "Maple Credit Union" in w and "INTERNAL_SERVER_ERROR" in w], warned


def test_after_a_repair_the_page_follows_until_a_sync_after_it_has_ended(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bank's last attempt failed (sign in again); right after the repair no sync has run yet, and the page
    must wait for one rather than take that old failure for the outcome."""
    c = bank_app.c
    user, item, pid = _needing_sign_in(bank_app, monkeypatch, "kit")
    at = click(open_page("accounts.py"), "Repair connection")
    bank_app.demo.repair(pid)  # the person signs in again at the bank, in Link
    repaired = {"kind": "success", "public_token": "", "metadata": {}}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: repaired)
    at.run()
    assert not at.exception, at.exception
    assert "Maple Credit Union is connected again." in said(at)
    assert "Syncing in the background" in everything(at) and "synced" not in " ".join(said(at))

    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    bank_app.clock.advance(minutes=1)
    assert sync.sync_item(c, user.id, item.id).status == "ok"  # the bot's sync after the repair
    at.run()  # in a browser, the poll's own rerun
    assert "Maple Credit Union is synced: see Transactions." in said(at)
    assert "Syncing in the background" not in everything(at)


def test_a_repair_the_bank_still_refuses_says_so_and_waits_for_nothing(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needing_sign_in(bank_app, monkeypatch, "lou")
    at = click(open_page("accounts.py"), "Repair connection")
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": ""})
    at.run()  # Link said success, but the bank still wants a sign-in
    assert not at.exception, at.exception
    assert said(at) == [] and any("Maple Credit Union" in w.value for w in at.warning)
    assert "Syncing in the background" not in everything(at) and "Repair connection" in [b.label for b in at.button]


def test_a_bank_followed_too_long_is_let_go_and_later_syncs_are_followed_again(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pages.ui import sync_watch
    from services.sync_state import acquire, worker_name

    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "max")
    at = click(open_page("accounts.py"), "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_2")  # type: ignore[union-attr]
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": public})
    at.run()
    assert "Syncing in the background" in everything(at)  # its first sync has not run
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    [item] = banking.list_items(c, user.id)
    assert sync.sync_item(c, user.id, item.id).status == "ok"

    later = sync_watch.time.monotonic() + sync_watch.WATCH_SECONDS + 1
    monkeypatch.setattr(sync_watch, "time", types.SimpleNamespace(monotonic=lambda: later))  # away that long
    at.run()
    assert "Syncing in the background" not in everything(at)
    with unit_of_work(c.engine) as session:  # hours later the bot syncs it again: the page follows that too
        row = session.get(PlaidItem, item.id)
        assert row is not None and acquire(session, row, worker_name("scheduler"), c.clock())
    at.run()
    assert "Syncing in the background" in everything(at)


def said(at: AppTest) -> list[str]:
    """The success messages on the page, as a person reads them (the page escapes markdown)."""
    return [e.value.replace("\\", "") for e in at.success]


def test_a_removed_banks_kept_history_is_listed_on_accounts_and_can_be_deleted(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "kim")
    item = bank_app.link(user.id, "ins_demo_2")
    bank_app.demo.mutate(bank_app.plaid_item_id(item.id), "add", cents=1_999, name="CORNER CAFE", pending=True)
    sync.sync_item(c, user.id, item.id)
    bank_app.demo.set_fault(bank_app.plaid_item_id(item.id), "institution_down", times=50)
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "failed"
    assert "Kept from removed banks" not in everything(open_page("accounts.py"))
    assert open_page("sync_history.py").error  # a linked bank's failure: said on top, with the way to fix it
    banking.remove_item(c, user.id, item.id, keep_history=True)

    at = open_page("sync_history.py")  # its syncs stay listed with its history, the failure no longer a call to act
    runs = at.dataframe[0].value
    assert list(runs["Bank"]) == ["Maple Credit Union (removed)"] * 2 and list(runs["Result"]) == ["failed", "synced"]
    assert not at.error and "What to do" not in runs.columns and runs["What happened"].iloc[0]

    at = open_page("accounts.py")
    assert "Kept from removed banks" in everything(at) and "No bank linked yet" in everything(at)
    table = at.dataframe[0].value
    assert len(table) == len(item.accounts) and table["Account"].str.startswith("Maple Credit Union: ").all()
    assert sorted(table["Type"]) == sorted(a.subtype or a.type for a in item.accounts)  # as while it was linked
    assert table["Transactions"].sum() == len(ledger_listing.list_transactions(c, user.id, limit=10**6)) > 0
    # pending ones stay pending with no bank left to post them: counted, and said why
    pending = sum(t.pending for t in ledger_listing.list_transactions(c, user.id, limit=10**6))
    assert table["Pending"].sum() == pending > 0 and "stays pending here" in everything(at)
    assert f"Maple Credit Union removed on {c.clock():%Y-%m-%d}." in everything(at).replace("\\", "")

    at.text_input(key="kept_delete_password").input(PASSWORD)
    at = click(at, "Delete for good")  # none chosen: said, and nothing goes
    assert "Choose the accounts" in everything(at) and len(at.dataframe[0].value) == len(item.accounts)

    doomed = list(table["Account"].iloc[:2])  # two of the three at once
    choice = at.multiselect(key="kept_delete_accounts")
    for label in doomed:
        choice.select(next(o for o in choice.options if o == label or label in o))
    at.text_input(key="kept_delete_password").input("not my password at all")
    at = click(at, "Delete for good")
    assert "That password is not right." in everything(at) and len(at.dataframe[0].value) == len(item.accounts)
    assert at.text_input(key="kept_delete_password").value == ""  # refused: not left typed beside the error
    assert len(at.multiselect(key="kept_delete_accounts").value) == 2  # the choice stays, to try again
    at.text_input(key="kept_delete_password").input(PASSWORD)
    at = click(at, "Delete for good")
    assert f"Deleted the kept history of {', '.join(doomed)} (" in everything(at).replace("\\", "")
    assert at.text_input(key="kept_delete_password").value == ""  # used: gone from the popover left open
    assert list(at.dataframe[0].value["Account"]) == list(table["Account"].iloc[2:])
    left = table["Transactions"].iloc[2:].sum()
    assert len(ledger_listing.list_transactions(c, user.id, limit=10**6)) == left

    last = table["Account"].iloc[2]  # the one left: nothing to choose
    assert not at.multiselect and f"{md(last)}: its transactions" in everything(at)
    at.text_input(key="kept_delete_password").input(PASSWORD)
    at = click(at, "Delete for good")
    assert f"Deleted the kept history of {last} (" in everything(at).replace("\\", "")
    assert "Kept from removed banks" not in everything(at) and ledger_listing.list_transactions(c, user.id) == []


def test_remove_bank_empties_the_password_and_code_it_was_given(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused or used, the password and two-factor code go from the Remove form; the choice of history stays."""
    from pages.ui import session as ui_session
    from tests.integration.auth_support import code_at, enable_totp, make_user, sign_in

    c = bank_app.c
    user = make_user(c, "ned")
    cookie = sign_in(c, "ned")
    secret = enable_totp(c, user.id, current_token=cookie)
    monkeypatch.setattr(ui_session, "read_cookie", lambda: cookie)
    item = bank_app.link(user.id)
    at = open_page("accounts.py")
    fields = (f"remove_{item.id}_password", f"remove_{item.id}_code")
    at.radio(key=f"keep_{item.id}").set_value("Delete them too")
    at.text_input(key=fields[0]).input("not my password at all")
    at.text_input(key=fields[1]).input("123456")
    at = click(at, "Remove this bank")
    assert not at.exception, at.exception
    assert "That password is not right." in [e.value for e in at.error]
    assert [at.text_input(key=k).value for k in fields] == ["", ""]  # not left typed beside the error
    assert at.radio(key=f"keep_{item.id}").value == "Delete them too"  # kept as chosen
    assert [i.id for i in banking.list_items(c, user.id)] == [item.id]

    bank_app.clock.advance(seconds=30)  # a code not used before
    at.text_input(key=fields[0]).input(PASSWORD)
    at.text_input(key=fields[1]).input(code_at(secret, c.clock()))
    at = click(at, "Remove this bank")
    assert not at.exception, at.exception
    assert "Removed First Demo Bank." in said(at) and banking.list_items(c, user.id) == []
    assert not [k for k in fields if at.session_state.get(k)]  # nothing secret kept
    assert "Kept from removed banks" not in everything(at)  # deleted, as chosen


def test_news_on_accounts_outlives_a_rerun_nobody_asked_for_but_not_its_time(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts reruns by itself while it follows the bot; a run that brings no news of its own within thirty seconds
    of "Linked …" shows it again rather than take it away before it could be read, and later lets it go."""
    import pages.ui.state as state

    c = bank_app.c
    signed_in(bank_app, monkeypatch, "max")
    at = click(open_page("accounts.py"), "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_2")  # type: ignore[union-attr]
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": public})
    clock = [1000.0]
    monkeypatch.setattr(state, "_now", lambda: clock[0])
    at.run()
    linked = "Linked Maple Credit Union with 3 accounts."
    assert linked in [e.value.replace("\\", "") for e in at.success]
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    clock[0] += state.GRACE_SECONDS - 1
    at.run()  # a rerun with no news of its own, just inside the grace
    assert linked in [e.value.replace("\\", "") for e in at.success]
    clock[0] += 2
    at.run()  # past the grace: gone
    assert linked not in [e.value.replace("\\", "") for e in at.success]


def test_a_connection_only_relinking_fixes_is_shown_as_broken_first_and_on_home(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access revoked at the bank, or a saved connection finsync cannot read: these wore a green check mark, kept
    their place, and Home's list of what needs the person left them out."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "una")
    bank_app.link(user.id, "ins_demo_1")
    broken = bank_app.link(user.id, "ins_demo_2")
    for status, words in (("permission_revoked", "Access was revoked"), ("error", "cannot be read")):
        with unit_of_work(c.engine) as s:
            row = s.get(PlaidItem, broken.id)
            assert row is not None
            row.status, row.status_code = status, "TOKEN_UNREADABLE" if status == "error" else None
        at = open_page("accounts.py")
        assert not at.exception and not [x for x in at.success if words in x.value]
        assert [x.value for x in at.error if words in x.value] and "Repair connection" not in [
            b.label for b in at.button
        ]
        assert _bank_headings(at) == ["Maple Credit Union", "First Demo Bank"]
        home = open_page("home.py")
        assert [w.value for w in home.warning if w.value.startswith("Maple Credit Union") and words in w.value]


def test_sync_history_says_what_an_unreadable_connection_or_an_unexpected_error_needs(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were explained as "the bank connection service is temporarily unavailable: nothing to do"."""
    from services import sync_engine
    from tests.integration.sync_helpers import corrupt_token

    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "vic")
    item = bank_app.link(user.id, "ins_demo_2")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr(sync_engine, "apply_run", broken)
        assert sync.sync_item(c, user.id, item.id).error_code == "INTERNAL_ERROR"
    bank_app.clock.advance(minutes=1)
    corrupt_token(c, item.id)
    assert sync.sync_item(c, user.id, item.id).error_code == "TOKEN_UNREADABLE"
    table = open_page("sync_history.py").dataframe[0].value
    said = list(zip(table["What happened"], table["What to do"], strict=True))
    assert said == [
        (
            "The saved connection cannot be read (the encryption keys changed or the data was altered).",
            "Remove it (its card on Accounts) and link the bank again.",
        ),
        (
            "finsync hit an unexpected error while syncing.",
            "Nothing to do: it tries again later; the operator can see why in the logs.",
        ),
    ]


def test_the_repair_offered_for_a_duplicate_link_lets_the_person_share_the_accounts_they_left_out(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linked with only the checking account ticked, then "Link a bank" again to add the savings: refused as the same
    login, and pointed at its card's "Repair connection". That Link must show the account picker, or the savings can
    never be added (and linking it alone makes a second connection to the same login)."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ned")
    first = banking.start_link(c, user.id)
    only = bank_app.link_login(first.link_token, account_keys=["checking"])
    banking.complete_link(c, user.id, public_token=only["public_token"], metadata=only,
                          link_session_id=first.link_session_id)  # fmt: skip
    at = click(open_page("accounts.py"), "Link a bank")
    again = c.plaid.sandbox_public_token_create("ins_demo_1")  # type: ignore[union-attr]  # every account ticked
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": again})
    at.run()
    assert not at.exception, at.exception
    assert any("already linked First Demo Bank" in e.value for e in at.error)
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    at = click(at, "Repair connection")
    assert not at.exception, at.exception
    token = at.session_state["link_start"][0]
    assert bank_app.demo.bank.link_sessions[token].account_selection is True
    picker = link_accounts(bank_app.demo.bank, token, "ins_demo_1", "user_good", BANK_PASSWORD)
    assert [a["name"] for a in picker["accounts"]] == ["Rainy Day Savings", "Rewards Card"]
    shared = bank_app.link_login(token, account_keys=["savings"])  # the person ticks the savings account
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", **shared})
    at.run()
    assert not at.exception, at.exception
    [item] = banking.list_items(c, user.id)
    assert sorted(a.name for a in item.accounts) == ["Everyday Checking", "Rainy Day Savings"]


def test_a_connection_whose_access_was_withdrawn_offers_no_repair_even_with_accounts_to_share_back(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account the person stopped sharing offers "Repair connection" to share it again; once the bank's access is
    withdrawn (ITEM_NOT_FOUND at Plaid for good) that button could only fail: the card says to remove and link again."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "una")
    item = bank_app.link(user.id)
    pid = bank_app.plaid_item_id(item.id)
    with bank_app.demo.bank.lock:
        bank_app.demo.bank.items[pid].hidden.append("savings")
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "ok"
    assert "Repair connection" in [b.label for b in open_page("accounts.py").button]  # to share the savings again
    bank_app.demo.set_fault(pid, "permission_revoked")
    bank_app.clock.advance(hours=1)
    assert sync.sync_item(c, user.id, item.id, explicit=True).error_code == "ITEM_NOT_FOUND"
    at = open_page("accounts.py")
    assert "Repair connection" not in [b.label for b in at.button]
    assert "Remove this bank" in [b.label for b in at.button]
