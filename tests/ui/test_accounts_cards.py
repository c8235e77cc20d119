"""What each bank's card on Accounts tells the person: a bank still preparing its data, two logins at one bank."""

from __future__ import annotations

import json

import pytest

import pages.ui.plaid_link as plaid_link_module
from pages.ui.text import md
from services import banking, sync
from tests.integration.auth_support import PASSWORD
from tests.integration.conftest_bank import Bank
from tests.ui.bank_support import click, open_page, signed_in, two_logins_preparing, wire_app

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def bank_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    return wire_app(bank, monkeypatch)


def test_a_bank_still_preparing_its_data_is_not_shown_as_connected_until_its_data_came(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plaid answers NOT_READY while a new connection's history is gathered: the card said "Connected." and "Last
    synced never", which read as broken or as done. It says the bank is still preparing, and when finsync asks again;
    once the data came, "Connected." and the last sync come back."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "pia")
    item = bank_app.link(user.id)
    plaid_id = bank_app.plaid_item_id(item.id)
    bank_app.demo.set_ready(plaid_id, False)
    assert sync.sync_item(c, user.id, item.id).status == "preparing"  # the bot's first sync

    at = open_page("accounts.py")
    assert not [s.value for s in at.success if "Connected" in s.value]
    assert not at.error, [e.value for e in at.error]
    assert [i.value for i in at.info if "still preparing your transactions" in i.value]
    captions = [cap.value for cap in at.caption]
    assert any(cap.startswith("No transactions yet · finsync asks your bank again") for cap in captions), captions
    assert not any("Last synced never" in cap for cap in captions), captions

    bank_app.demo.set_ready(plaid_id, True)
    bank_app.clock.advance(minutes=1)
    assert sync.sync_item(c, user.id, item.id).status == "ok"
    at = open_page("accounts.py")
    assert [s.value for s in at.success if s.value == r"Connected\."]
    assert not [i.value for i in at.info if "still preparing" in i.value]
    assert any(cap.value.startswith("Last synced ") for cap in at.caption)


def test_two_connections_to_one_bank_each_say_which_accounts_they_hold(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two logins at First Demo Bank gave two identical cards (same heading, same badge): nothing said which one to
    remove. Each now names its accounts' last digits and when it was linked; a bank linked once needs no such line."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "rae")
    first = bank_app.link(user.id, "ins_demo_1", "user_good")
    bank_app.clock.advance(minutes=5)
    second = bank_app.link(user.id, "ins_demo_1", "user_yuppie")
    bank_app.link(user.id, "ins_demo_2")
    masks = {i.id: [a.mask for a in i.accounts] for i in banking.list_items(c, user.id)}
    assert set(masks[first.id]).isdisjoint(masks[second.id])  # the demo bank gives each login its own numbers

    at = open_page("accounts.py")
    assert not at.exception, at.exception
    lines = [cap.value for cap in at.caption if cap.value.startswith("Linked ")]
    assert len(lines) == 2, lines  # one per First Demo Bank card, none for Maple Credit Union
    for item, line in zip((first, second), lines, strict=True):  # cards in the order the banks were linked
        assert all(f"••{mask}" in line for mask in masks[item.id]), (line, masks[item.id])
        other = second if item is first else first
        assert not any(f"••{mask}" in line for mask in masks[other.id]), line
    assert lines[0] != lines[1]
    assert [h.value for h in at.subheader].count("First Demo Bank") == 2


def test_sync_history_tells_two_connections_to_one_bank_apart(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync history listed "First Demo Bank" for runs of either login: which one failed could not be told. A bank
    linked twice is named with its accounts' last digits there, as on Accounts; a bank linked once keeps its name."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "sol")
    first = bank_app.link(user.id, "ins_demo_1", "user_good")
    second = bank_app.link(user.id, "ins_demo_1", "user_yuppie")
    maple = bank_app.link(user.id, "ins_demo_2")
    for item in (first, second, maple):
        assert sync.sync_item(c, user.id, item.id).status == "ok"
    digits = {i.id: ", ".join(f"••{a.mask}" for a in i.accounts) for i in banking.list_items(c, user.id)}

    banks = list(open_page("sync_history.py").dataframe[0].value["Bank"])
    assert sorted(banks) == sorted(
        [f"First Demo Bank ({digits[first.id]})", f"First Demo Bank ({digits[second.id]})", "Maple Credit Union"]
    ), banks


def test_home_names_a_bank_still_preparing_its_data(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """Home said "a bank has not synced yet" of a bank that synced and was told by Plaid to come back later: it
    now names the bank and says it is still preparing the transactions."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "tia")
    good, slow = bank_app.link(user.id, "ins_demo_1"), bank_app.link(user.id, "ins_demo_2")
    bank_app.demo.set_ready(bank_app.plaid_item_id(slow.id), False)
    assert [sync.sync_item(c, user.id, i.id).status for i in (good, slow)] == ["ok", "preparing"]
    said = [cap.value for cap in open_page("home.py").caption if cap.value.startswith("2 banks")]
    assert said == [r"2 banks, 6 accounts · Maple Credit Union is still preparing your transactions"], said


def test_linking_a_login_again_points_at_its_own_card_among_two_of_that_bank(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two logins at First Demo Bank, linking one of them again was refused with "use Repair connection on its
    card below", and the first First Demo Bank card had no such button: it was on the other one, further down. That
    card now comes first and the refusal names its accounts."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "uma")
    bank_app.link(user.id, "ins_demo_1", "user_yuppie")
    bank_app.link(user.id, "ins_demo_2")
    again = bank_app.link(user.id, "ins_demo_1", "user_good")  # the login linked again below: listed last until now
    digits = ", ".join(f"••{a.mask}" for a in again.accounts)

    at = click(open_page("accounts.py"), "Link a bank")
    public = c.plaid.sandbox_public_token_create("ins_demo_1")  # type: ignore[union-attr]  # user_good once more
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: {"kind": "success", "public_token": public})
    at.run()
    assert not at.exception, at.exception
    [refused] = [e.value.replace("\\", "") for e in at.error if "already linked" in e.value]
    assert refused.endswith(f"It is the card of First Demo Bank with the accounts {digits}."), refused
    lines = [cap.value for cap in at.caption if cap.value.startswith("Linked ")]
    assert digits in lines[0], lines  # the first card is the one the message means
    assert [b.label for b in at.button].count("Repair connection") == 1
    assert len(banking.list_items(c, user.id)) == 3  # nothing new was linked


def test_an_empty_ledger_with_a_bank_linked_does_not_ask_to_link_one(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transactions said "Link a bank on the Accounts page" to a person who had just linked one whose bank was still
    preparing the data. It now says which bank is preparing; before any sync, that the first sync brings them."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "val")
    item = bank_app.link(user.id, "ins_demo_2")

    said = [i.value for i in open_page("transactions.py").info]
    assert said == [
        "No transactions yet: they appear here after your bank's first sync (Accounts shows how it is going)."
    ], said
    bank_app.demo.set_ready(bank_app.plaid_item_id(item.id), False)
    assert sync.sync_item(c, user.id, item.id).status == "preparing"
    said = [i.value for i in open_page("transactions.py").info]
    assert said == [
        "No transactions yet: Maple Credit Union is still preparing them. Nothing to do: they appear here once ready."
    ], said
    assert not any("Link a bank" in s for s in said)


def test_removing_one_of_two_connections_to_a_bank_says_which_went(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Removed First Demo Bank." left the person to wonder which of the two had gone (the other card still reads
    First Demo Bank): the form and the news now name the connection by its accounts' last digits."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "wes")
    keep = bank_app.link(user.id, "ins_demo_1", "user_good")
    gone = bank_app.link(user.id, "ins_demo_1", "user_yuppie")
    digits = ", ".join(f"••{a.mask}" for a in gone.accounts)
    at = open_page("accounts.py")
    assert f"Disconnect First Demo Bank \\({md(digits)}\\) from finsync and from Plaid." in [
        m.value for m in at.markdown
    ]
    at.text_input(key=f"remove_{gone.id}_password").input(PASSWORD)
    [submit] = [b for b in at.button if b.label == "Remove this bank" and b.proto.form_id == f"remove_form_{gone.id}"]
    at = submit.click().run()
    assert not at.exception, at.exception
    assert [i.id for i in banking.list_items(c, user.id)] == [keep.id]
    assert [s.value.replace("\\", "") for s in at.success if s.value.startswith("Removed")] == [
        f"Removed First Demo Bank ({digits})."
    ]


def test_news_after_a_sync_says_which_of_two_connections_to_one_bank_it_means(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two logins at First Demo Bank, "First Demo Bank is synced: see Transactions." (and "First Demo Bank: …"
    after Sync now) did not say which connection: the news names it by its accounts' last digits, as its card does."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "una")
    first = bank_app.link(user.id, "ins_demo_1", "user_good")
    assert sync.sync_item(c, user.id, first.id).status == "ok"
    at = click(open_page("accounts.py"), "Link a bank")
    token = at.session_state["link_start"][0]
    success = bank_app.link_login(token, "ins_demo_1", "user_yuppie")
    outcome = {"kind": "success", "public_token": success["public_token"], "metadata": success}
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: outcome)
    at.run()  # the second login is linked; the page follows its first sync
    assert not at.exception, at.exception
    second = next(i for i in banking.list_items(c, user.id) if i.id != first.id)
    digits = {i.id: ", ".join(f"••{a.mask}" for a in i.accounts) for i in banking.list_items(c, user.id)}
    assert sync.sync_item(c, user.id, second.id).status == "ok"  # the bot's first sync
    monkeypatch.setattr(plaid_link_module, "plaid_link", lambda **_: None)
    at.run()  # in a browser, the poll's own rerun
    said = [s.value.replace("\\", "") for s in at.success]
    assert f"First Demo Bank ({digits[second.id]}) is synced: see Transactions." in said, said
    assert "First Demo Bank is synced: see Transactions." not in said

    bank_app.demo.set_ready(bank_app.plaid_item_id(first.id), False)  # Sync now on the first card: not ready
    bank_app.clock.advance(minutes=1)
    [press] = [b for b in at.button if b.key == f"sync_{first.id}"]
    at = press.click().run()
    told = [i.value.replace("\\", "") for i in at.info if i.value.replace("\\", "").startswith("First Demo Bank")]
    assert told and all(t.startswith(f"First Demo Bank ({digits[first.id]}): ") for t in told), told


def test_a_card_without_a_repair_button_leaves_no_blank_slot_among_its_buttons(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's buttons stood in three columns, the middle one for Repair connection: with no repair to offer it
    stayed empty, a blank slot between "Sync now" and "Remove" on a phone. No column of the page is left empty."""
    user = signed_in(bank_app, monkeypatch, "vic")
    item = bank_app.link(user.id, "ins_demo_1", "user_good")
    at = open_page("accounts.py")
    assert not at.exception, at.exception
    assert "Repair connection" not in [b.label for b in at.button]
    assert [b.key for b in at.button if b.label == "Sync now"] == [f"sync_{item.id}"]
    assert at.columns and all(len(col.children) for col in at.columns)


def test_sync_history_gives_each_result_and_reason_room_for_its_words(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grid sizes a column to its first rows: with a dozen "synced" runs on top, "bank preparing data" further down
    was cut off. Result and Why have widths that hold their longest words, whichever rows come first (at about 6.5
    pixels a character plus the cell's padding, as Chromium draws the grid's font)."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "tim")
    maple = bank_app.link(user.id, "ins_demo_2")
    bank_app.demo.set_ready(bank_app.plaid_item_id(maple.id), False)
    assert sync.sync_item(c, user.id, maple.id).status == "preparing"
    first = bank_app.link(user.id, "ins_demo_1", "user_good")
    for _ in range(12):
        bank_app.clock.advance(minutes=1)
        assert sync.sync_item(c, user.id, first.id).status == "ok"

    at = open_page("sync_history.py")
    assert not at.exception, at.exception
    grid = at.dataframe[0]
    results = list(grid.value["Result"])
    assert results[-1] == "bank preparing data" and set(results[:10]) == {"synced"}, results
    widths = {name: spec.get("width") for name, spec in json.loads(grid.proto.columns).items()}
    for column in ("Result", "Why"):
        longest = max(len(v) for v in grid.value[column])
        assert isinstance(widths.get(column), int), widths
        assert widths[column] >= 6.5 * longest + 16, (column, widths[column], longest)


def test_home_tells_apart_two_connections_to_one_bank_both_preparing(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two logins at one bank both still preparing, Home said "First Demo Bank, First Demo Bank are still
    preparing your transactions". Each is named with its accounts' last digits, as on Accounts and Sync history."""
    user = signed_in(bank_app, monkeypatch, "una")
    digits = two_logins_preparing(bank_app, user.id)
    [said] = [cap.value for cap in open_page("home.py").caption if cap.value.startswith("2 banks")]
    assert said.endswith("are still preparing your transactions"), said
    for one in digits:
        assert all(f"••{mask}" in said for mask in one), (said, digits)
