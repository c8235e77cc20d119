"""The Transactions page as a person uses it (AppTest): a long ledger page by page, searching, the edit form
following the selected row, the grid's own CSV download switched off, the amount where a phone shows it."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from models import LedgerTransaction
from services import ledger, ledger_listing, sync
from services.db import unit_of_work
from tests.integration.conftest_bank import Bank
from tests.integration.test_ledger_listing import add_ledger
from tests.ui.bank_support import (
    click,
    everything,
    open_page,
    shown_cells,
    signed_in,
    two_logins_preparing,
    wire_app,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def bank_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    return wire_app(bank, monkeypatch)


def grid_key(at: AppTest) -> str:
    """The widget key of the transactions grid (it follows the rows shown)."""
    [key] = [d.proto.id.split("-", 2)[2] for d in at.dataframe if "-tx_grid_" in d.proto.id]
    return key


def select_row(at: AppTest, row: int | None) -> AppTest:
    """Click a row of the grid (None: clear the selection), as the browser reports it."""
    at.session_state[grid_key(at)] = {"selection": {"rows": [] if row is None else [row], "columns": [], "cells": []}}
    return at.run()


def grid_names(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Name"])


def selected_rows(at: AppTest) -> list[int]:
    return list(at.session_state[grid_key(at)]["selection"]["rows"])


def form_open(at: AppTest) -> bool:
    return any(b.label == "Save" for b in at.button)


def test_a_ledger_of_597_says_597_and_every_page_can_be_opened_and_edited(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")
    order = add_ledger(c, user.id, [f"SHOP {i}" for i in range(597)])
    at = open_page("transactions.py")
    assert "597 transactions, newest first; showing 1–500." in everything(at)
    assert len(grid_names(at)) == 500 and "SHOP 596" not in grid_names(at)

    at = click(at, "Older")
    assert "597 transactions, newest first; showing 501–597." in everything(at)
    assert len(grid_names(at)) == 97 and grid_names(at)[-1] == "SHOP 596"  # the oldest one is there
    at = select_row(at, 96)
    next(t for t in at.text_area if t.label == "Note").input("the very first purchase")
    at = click(at, "Save")
    assert "Saved." in everything(at) and "showing 501–597" in everything(at)  # still on that page
    assert sync.get_transaction(c, user.id, order[-1]).note == "the very first purchase"

    at = click(at, "Newer")
    assert "showing 1–500" in everything(at) and grid_names(at)[0] == "SHOP 0" and not form_open(at)


def test_a_search_that_finds_nothing_says_so_and_finds_the_users_own_words(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "bea")
    ids = add_ledger(c, user.id, ["CORNER CAFE", "BOOKSHOP", "TRAIN"])
    sync.edit_transaction(c, user.id, ids[1], note="Birthday present for Sam", tags=["gifts"])
    at = open_page("transactions.py")
    at.text_input(key="tx_search").input("submarine").run()
    shown = everything(at)
    assert "No transactions match “submarine”" in shown and "No transactions yet" not in shown
    assert not at.dataframe

    at.text_input(key="tx_search").input("BIRTHDAY").run()  # her note, any case
    assert grid_names(at) == ["BOOKSHOP"] and "1 transaction matches your search" in everything(at)
    at.text_input(key="tx_search").input("Gifts").run()  # her tag
    assert grid_names(at) == ["BOOKSHOP"]

    empty = signed_in(bank_app, monkeypatch, "cal")  # no transactions at all: the way to get some
    assert not ledger_listing.list_transactions(c, empty.id)
    assert "No transactions yet. Link a bank" in everything(open_page("transactions.py"))


def form_follows_grid(at: AppTest) -> str | None:
    """The name of the transaction the form is for, after checking it is the row the grid shows selected."""
    rows = selected_rows(at)
    if not rows:
        assert not form_open(at) and not at.subheader, "a form for a row the grid does not show selected"
        return None
    name = grid_names(at)[rows[0]]
    assert form_open(at) and name in at.subheader[0].value, (name, at.subheader)
    return name


def test_the_edit_form_is_for_the_selected_row_only(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "dee")
    ids = add_ledger(c, user.id, ["CORNER CAFE", "BOOKSHOP", "TRAIN", "CAFE ROMA"])
    at = select_row(open_page("transactions.py"), 1)
    assert form_follows_grid(at) == "BOOKSHOP"

    # A search that does not list it: nothing is selected, so there is no form; nor when the search is cleared
    # (the browser still holds the old list's selection, but does not show it).
    at.text_input(key="tx_search").input("cafe").run()
    assert grid_names(at) == ["CORNER CAFE", "CAFE ROMA"] and form_follows_grid(at) is None
    at.text_input(key="tx_search").input("").run()
    assert len(grid_names(at)) == 4 and form_follows_grid(at) is None

    # A search that still lists it: it stays selected in the new list and the form follows it.
    at = select_row(at, 3)
    at.text_input(key="tx_search").input("cafe").run()
    assert selected_rows(at) == [1] and form_follows_grid(at) == "CAFE ROMA"

    # Cleared in the grid: no form.
    at = select_row(at, None)
    assert form_follows_grid(at) is None

    # Save pressed as the search took the row away: nothing is saved, and the page says so.
    at = select_row(at, 0)
    assert form_follows_grid(at) == "CORNER CAFE"
    next(t for t in at.text_area if t.label == "Note").input("espresso")
    at.text_input(key="tx_search").input("train")
    at = click(at, "Save")
    assert any("Nothing was saved" in w.value for w in at.warning) and form_follows_grid(at) is None
    assert sync.get_transaction(c, user.id, ids[0]).note is None


def test_the_amount_comes_right_after_the_date(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a 390-pixel phone only the first columns fit: the amount must be one of them, the name next; and the date
    and the amount stay pinned there while the rest scrolls sideways."""
    user = signed_in(bank_app, monkeypatch, "fay")
    add_ledger(bank_app.c, user.id, ["BOOKSHOP"])
    shown = open_page("transactions.py").dataframe[0]
    grid = shown_cells(shown)
    assert list(grid.columns)[:3] == ["Date", "Amount", "Name"] and grid["Amount"].iloc[0] == "-$1.00"
    config = json.loads(shown.proto.columns)
    assert {name for name, column in config.items() if column.get("pinned")} == {"Date", "Amount"}


def test_amounts_sort_as_amounts_and_show_whole_with_their_sign(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A click on the Amount header sorted the text: -$1,850.00 came after -$1,088.37 and -$9.25 after -$85.00. The
    grid now holds numbers (what it sorts) shown as money in each row's currency, and the column is wide enough for
    the longest amount: right-aligned, a narrower one showed -$2,912.64 as $2,912.64."""
    user = signed_in(bank_app, monkeypatch, "gus")
    ids = add_ledger(bank_app.c, user.id, ["RENT", "LUNCH", "SHOP", "FARE", "REFUND"], per_day=5)
    amounts = {"RENT": (-185000, "USD"), "LUNCH": (-925, "USD"), "SHOP": (-108837, "USD"), "FARE": (-8500, "JPY"),
               "REFUND": (123456, "EUR")}  # fmt: skip
    with unit_of_work(bank_app.c.engine) as session:
        for tid in ids:
            row = session.get(LedgerTransaction, tid)
            assert row is not None
            row.amount_minor, row.iso_currency_code = amounts[row.name]
    shown = open_page("transactions.py").dataframe[0]
    raw, cells = shown.value, shown_cells(shown)
    by_name = dict(zip(raw["Name"], zip(raw["Amount"], cells["Amount"], strict=True), strict=True))
    assert by_name == {
        "RENT": (-1850.0, "-$1,850.00"),
        "LUNCH": (-9.25, "-$9.25"),
        "SHOP": (-1088.37, "-$1,088.37"),
        "FARE": (-8500.0, "-¥8,500"),
        "REFUND": (1234.56, "€1,234.56"),
    }
    assert list(raw.sort_values("Amount")["Name"]) == ["FARE", "RENT", "SHOP", "LUNCH", "REFUND"]
    width = json.loads(shown.proto.columns)["Amount"]["width"]
    assert width >= 8 * len("-$1,088.37") + 16, width


def test_a_huge_amount_in_an_eight_decimal_currency_is_shown_to_its_last_digit(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grid's numbers are floats (what it sorts), which hold 15 to 17 digits; the sync keeps up to 10**18 minor
    units of an 8-decimal currency. Read back from the float, -999,999,999.99999999 BTC showed as
    -1,000,000,000.00000000 BTC, and two amounts one unit apart showed the same. Each is shown as stored."""
    user = signed_in(bank_app, monkeypatch, "hal")
    ids = add_ledger(bank_app.c, user.id, ["WHALE", "NEXT", "ONE MORE"], per_day=3)
    amounts = {"WHALE": -99999999999999999, "NEXT": 123456789012345679, "ONE MORE": 123456789012345680}
    with unit_of_work(bank_app.c.engine) as session:
        for tid in ids:
            row = session.get(LedgerTransaction, tid)
            assert row is not None
            row.amount_minor, row.iso_currency_code = amounts[row.name], "BTC"
    shown = open_page("transactions.py").dataframe[0]
    raw, cells = shown.value, shown_cells(shown)
    assert dict(zip(raw["Name"], cells["Amount"], strict=True)) == {
        "WHALE": "-999,999,999.99999999 BTC",
        "NEXT": "1,234,567,890.12345679 BTC",
        "ONE MORE": "1,234,567,890.12345680 BTC",
    }
    assert raw.sort_values("Amount")["Name"].iloc[0] == "WHALE"


def test_a_note_typed_on_a_hold_that_posts_meanwhile_is_saved_on_the_posted_charge(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user opens a pending hotel hold and types a note; before Save, the bot syncs and the hold posts. The
    form (and the note typed) stays, Save succeeds, and the note is on the posted charge: not "edited somewhere
    else", not lost."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "hal")
    item = bank_app.link(user.id)
    pid = bank_app.plaid_item_id(item.id)
    hold = bank_app.demo.mutate(pid, "add", cents=4200, name="HOTEL HOLD", pending=True)["transaction_id"]
    sync.sync_item(c, user.id, item.id)
    at = open_page("transactions.py")
    at.text_input(key="tx_search").input("hotel hold").run()
    at = select_row(at, 0)
    next(t for t in at.text_area if t.label == "Note").input("conference in Lyon")

    posted = bank_app.demo.mutate(pid, "post", transaction_id=hold, cents=4500)["transaction_id"]
    sync.sync_item(c, user.id, item.id)
    at = click(at, "Save")
    assert not at.error, [e.value for e in at.error]
    assert "Saved." in everything(at)
    assert sync.get_transaction(c, user.id, posted).note == "conference in Lyon"


def test_a_note_saved_alone_leaves_long_tags_and_an_all_caps_category_as_typed(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags are shown with a space after each comma, so the field must hold more than was typed; and a category the
    user wrote in capitals ("HSA") is theirs, not a bank code to reword."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "eve")
    [tid] = add_ledger(c, user.id, ["PHARMACY"])
    tags = [f"tag{n:02d}" + "x" * 40 for n in range(ledger.MAX_TAGS)]  # 20 tags of 45: 920 typed, 958 shown
    sync.edit_transaction(c, user.id, tid, tags=tags, category="HSA")
    at = select_row(open_page("transactions.py"), 0)
    assert list(at.dataframe[0].value["Category"]) == ["HSA"]
    next(t for t in at.text_area if t.label == "Note").input("receipt in the drawer")
    at = click(at, "Save")
    saved = sync.get_transaction(c, user.id, tid)
    assert (saved.note, list(saved.tags), saved.category) == ("receipt in the drawer", tags, "HSA")


def test_an_edit_that_takes_its_row_off_the_searched_list_still_says_it_was_saved(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")
    order = add_ledger(c, user.id, ["SHOP A", "SHOP B"])
    ledger.edit_transaction(c, user.id, order[0], category="Household")
    at = open_page("transactions.py")
    at.text_input(key="tx_search").input("household")
    at = at.run()
    assert grid_names(at) == ["SHOP A"]
    at = select_row(at, 0)
    next(t for t in at.text_input if t.label.startswith("Category")).input("")
    at = click(at, "Save")
    said = everything(at)
    assert "Saved." in said and "It no longer matches your search, so it left this list." in said
    assert "No transactions match" in said and sync.get_transaction(c, user.id, order[0]).category_override is None


def test_an_empty_ledger_tells_apart_two_connections_to_one_bank_both_preparing(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "First Demo Bank, First Demo Bank are still preparing them": each login is named with its accounts'
    last digits, as on Accounts."""
    user = signed_in(bank_app, monkeypatch, "ivy")
    digits = two_logins_preparing(bank_app, user.id)
    [said] = [i.value for i in open_page("transactions.py").info if i.value.startswith("No transactions yet")]
    assert "are still preparing them" in said, said
    for one in digits:
        assert all(f"••{mask}" in said for mask in one), (said, digits)
