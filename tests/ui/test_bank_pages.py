"""Accounts, Transactions, Sync history and notification settings as a person uses them (AppTest).

The Link component itself runs only in a browser (tests/e2e); here its seam hands the page a real
public token made by the demo bank, and everything after it is real: exchange, storage, sync.
"""

from __future__ import annotations

import dataclasses
import types
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

import pages.ui.plaid_link as plaid_link_module
from models import PlaidItem
from pages.ui import session as ui_session
from pages.ui import state
from services import auth, banking, ledger, sync
from services.db import unit_of_work
from tests.integration.auth_support import PASSWORD, code_at, enable_totp, make_user, sign_in
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
    grid = at.dataframe[0].value
    assert len(grid) > 20 and {"Date", "Name", "Amount", "Category"} <= set(grid.columns)
    assert grid["Amount"].str.contains(r"^-?\$", regex=True).all()

    at = open_page("sync_history.py")
    runs = at.dataframe[0].value
    assert (
        list(runs["Result"]) == ["synced"]
        and list(runs["Why"]) == ["Sync now"]
        and runs["Added"].iloc[0] == len(sync.list_runs(c, user.id)) * runs["Added"].iloc[0]
    )

    # Removing the bank, keeping nothing, leaves no transactions behind.
    banking.remove_item(c, user.id, item.id, keep_history=False)
    at = open_page("transactions.py")
    assert "No transactions yet" in everything(at)


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


def test_unverified_user_cannot_start_linking(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    signed_in(bank_app, monkeypatch, "cal", verified=False)
    at = click(open_page("accounts.py"), "Link a bank")
    assert "Verify your email address before linking a bank." in everything(at)


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


# --- coming back from an OAuth bank: a new browser session resumes the stored Link session -----
# A browser reports st.context.url without the query string (streamlit's docstring); each test seeds the URL the
# bank's redirect opens (PLAID_REDIRECT_URI: Accounts, or the app root).
BROWSER_URL = "http://127.0.0.1:8501"
OAUTH_URL = "http://127.0.0.1:8501/accounts?oauth_state_id=4f6e0b9c-oauth"  # what Link must be handed back


def open_after_oauth(
    monkeypatch: pytest.MonkeyPatch, outcome: dict[str, Any] | None = None, *, page: str | None = "accounts.py"
) -> tuple[AppTest, list[dict[str, Any]]]:
    """Open the app as the bank's redirect does (query param and URL); record what the Link seam receives.

    ``page`` is where PLAID_REDIRECT_URI points: Accounts, or None for the app root.
    """
    return browser_opens(monkeypatch, f"{'/accounts' if page else '/'}?oauth_state_id=4f6e0b9c-oauth", outcome)


ROUTES = {"/": None, "/accounts": "accounts.py"}  # the paths of ours a browser may be sent to, and their pages


def browser_opens(
    monkeypatch: pytest.MonkeyPatch, path_and_query: str, outcome: dict[str, Any] | None = None
) -> tuple[AppTest, list[dict[str, Any]]]:
    """The browser loads this URL of our app (its query params, its URL, the page its path routes to); the Link
    seam answers ``outcome`` and records what it receives."""
    parts = urlsplit(path_and_query)
    assert not parts.scheme and not parts.netloc and parts.path in ROUTES, path_and_query  # our own pages only
    calls: list[dict[str, Any]] = []

    def seam(**kwargs: Any) -> dict[str, Any] | None:
        calls.append(kwargs)
        return outcome

    monkeypatch.setattr(plaid_link_module, "plaid_link", seam)
    at = AppTest.from_file(ENTRY, default_timeout=60)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        at.query_params[name] = value
    at.context["url"] = BROWSER_URL + parts.path.rstrip("/")
    page = ROUTES[parts.path]
    (at.switch_page(page) if page else at).run()
    assert not at.exception, at.exception
    return at, calls


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_oauth_redirect_resumes_the_open_link_session(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")
    start = banking.start_link(c, user.id)
    success = bank_app.link_login(start.link_token, "ins_demo_2")  # what Link returns once the bank sent us back
    at, calls = open_after_oauth(monkeypatch, {"kind": "success", **success})
    first = calls[0]
    assert first["link_token"] == start.link_token and first["label"] == "Choose your bank"
    assert first["received_redirect_uri"] == OAUTH_URL and first["key"] == f"plaid_link_{start.link_session_id}"
    assert "Linked Maple Credit Union" in everything(at)
    assert [i.institution_name for i in banking.list_items(c, user.id)] == ["Maple Credit Union"]

    assert "oauth_state_id" not in at.query_params  # resumed once: a reload or rerun does not reopen Link
    calls.clear()
    at.run()
    assert not at.exception and calls == [] and "Link a bank" in labels(at)
    assert banking.resume_link(c, user.id) is None


def test_oauth_redirect_to_the_app_root_opens_accounts_and_resumes_link(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PLAID_REDIRECT_URI may be the app root: "/?oauth_state_id=..." must not land on Home and drop Link."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "ann")
    start = banking.start_link(c, user.id)
    success = bank_app.link_login(start.link_token, "ins_demo_2")
    at, calls = open_after_oauth(monkeypatch, {"kind": "success", **success}, page=None)
    assert at.title[0].value == "Accounts"
    [first] = calls
    assert first["link_token"] == start.link_token
    assert first["received_redirect_uri"] == f"{BROWSER_URL}/?oauth_state_id=4f6e0b9c-oauth"  # window.location.href
    assert "Linked Maple Credit Union" in everything(at)
    assert [i.institution_name for i in banking.list_items(c, user.id)] == ["Maple Credit Union"]
    calls.clear()
    at.run()  # resumed once; the rerun stays on Accounts without reopening Link
    assert not at.exception and calls == [] and at.title[0].value == "Accounts" and "Link a bank" in labels(at)


def test_the_app_root_without_oauth_state_id_still_opens_home(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    signed_in(bank_app, monkeypatch, "ann")
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception and at.title[0].value != "Accounts"


def test_oauth_redirect_resumes_a_repair_as_a_repair(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    c = bank_app.c
    uid = bank_app.user("rae")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "rae"))
    item = bank_app.link(uid, "ins_demo_2")
    start = banking.start_link(c, uid, item_id=item.id)  # "Repair connection" starts update mode like this
    at, calls = open_after_oauth(monkeypatch, {"kind": "success", "public_token": "", "metadata": {}})
    assert calls[0]["link_token"] == start.link_token and calls[0]["label"] == "Sign in to your bank again"
    assert calls[0]["received_redirect_uri"] == OAUTH_URL
    assert "Maple Credit Union is connected again" in everything(at) and "Linked" not in everything(at)
    assert [i.id for i in banking.list_items(c, uid)] == [item.id]


def test_oauth_redirect_never_resumes_a_closed_expired_or_other_users_session(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, clock = bank_app.c, bank_app.clock
    ann, bob = make_user(c, "ann"), make_user(c, "bob")
    banking.start_link(c, ann.id)
    clock.advance(hours=4, seconds=1)  # Link sessions are kept for four hours: that one has expired
    cancelled = banking.start_link(c, ann.id)
    banking.link_exit(c, ann.id, link_session_id=cancelled.link_session_id, error=None)
    bobs = banking.start_link(c, bob.id)  # open, newest, and not ann's
    monkeypatch.setattr(ui_session, "read_cookie", lambda: sign_in(c, "ann"))
    at, calls = open_after_oauth(monkeypatch)
    assert calls == [] and "Link a bank" in labels(at) and "No bank linked yet" in everything(at)
    assert warnings(at) == [NOT_RESUMED]
    assert banking.resume_link(c, ann.id) is None
    resumed = banking.resume_link(c, bob.id)
    assert resumed is not None and resumed.link_session_id == bobs.link_session_id  # it was there to be taken


NOT_RESUMED = "The bank sign-in could not be resumed; link the bank again."


def warnings(at: AppTest) -> list[str]:
    """The warnings as the user reads them (the markdown escapes of ``md`` dropped)."""
    return [w.value.replace("\\", "") for w in at.warning]


def test_oauth_redirect_without_an_open_session_says_so_once(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed in, nothing to resume (or a parameter that is not Plaid's): the page says so instead of nothing."""
    user = signed_in(bank_app, monkeypatch, "ann")
    at, calls = open_after_oauth(monkeypatch)
    assert calls == [] and warnings(at) == [NOT_RESUMED] and "Link a bank" in labels(at)
    at.run()
    assert not at.exception and NOT_RESUMED not in everything(at)

    banking.start_link(bank_app.c, user.id)
    at, calls = browser_opens(monkeypatch, "/accounts?oauth_state_id=%3Cscript%3E")  # open, but the id is no id
    assert calls == [] and warnings(at) == [NOT_RESUMED]


# --- coming back from an OAuth bank signed out: sign in, then Link resumes -------------------------
STATE = "4f6e0b9c-oauth"


def with_redirect_uri(bank_app: Bank, monkeypatch: pytest.MonkeyPatch, redirect_uri: str | None) -> None:
    """Serve the app with PLAID_REDIRECT_URI set to ``redirect_uri`` (as the operator configured it)."""
    settings = bank_app.c.settings.model_copy(update={"plaid_redirect_uri": redirect_uri})
    c = dataclasses.replace(bank_app.c, settings=settings)
    state.container.clear()
    monkeypatch.setattr(state, "build_container", lambda: c)


def sign_in_on_return(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, login: str, arrival: str, *, secret: str | None = None
) -> tuple[str, dict[str, str]]:
    """A signed-out browser opens ``arrival`` (the bank's redirect) and signs in through the form (and the
    code, when ``secret`` is given); returns what the sign-in page said on arrival and what the browser is
    told to do with its ticket."""
    from pages.ui import browser

    asked: list[dict[str, str]] = []
    monkeypatch.setattr(browser, "_post_and_reload", lambda **kw: asked.append(kw["data"]))  # AppTest runs no JS
    monkeypatch.setattr(ui_session, "read_cookie", lambda: None)
    parts = urlsplit(arrival)
    at = AppTest.from_file(ENTRY, default_timeout=60)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        at.query_params[name] = value
    at.context["url"] = BROWSER_URL + parts.path.rstrip("/")
    at.run()
    assert not at.exception and at.title[0].value == "Sign in to finsync"
    said = everything(at)
    at.text_input(key="sign_in_login").input(login)
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = click(at, "Sign in")
    if secret is not None:
        bank_app.clock.advance(seconds=90)
        at.text_input(key="totp_code").input(code_at(secret, bank_app.clock.now))
        at = click(at, "Verify")
    assert not at.exception, at.exception
    (handoff,) = asked
    assert handoff["url"] == "/auth/session" and handoff["body"] == at.session_state["handoff_ticket"]
    return said, handoff


def cookie_from(bank_app: Bank, monkeypatch: pytest.MonkeyPatch, handoff: dict[str, str]) -> None:
    """What the ticket route does: the browser now carries the session cookie."""
    token = auth.redeem_ticket(bank_app.c, ticket=handoff["body"])
    monkeypatch.setattr(ui_session, "read_cookie", lambda: token)


@pytest.mark.parametrize(
    ("redirect_uri", "two_factor"),
    [(None, False), (f"{BROWSER_URL}/accounts", True)],
    ids=["root-password", "accounts-page-totp"],
)
def test_signed_out_oauth_return_resumes_link_after_sign_in(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, redirect_uri: str | None, two_factor: bool
) -> None:
    """The session ended during the bank's OAuth: sign in, and Link reopens with the URL the bank sent."""
    c = bank_app.c
    with_redirect_uri(bank_app, monkeypatch, redirect_uri)
    uid = bank_app.user("ann")
    secret = enable_totp(c, uid) if two_factor else None
    start = banking.start_link(c, uid)
    success = bank_app.link_login(start.link_token, "ins_demo_2")
    returned = f"{'/accounts' if redirect_uri else '/'}?oauth_state_id={STATE}"  # where the bank sent the browser

    said, handoff = sign_in_on_return(bank_app, monkeypatch, "ann", returned, secret=secret)
    assert "Sign in to finish linking your bank." in said
    assert (handoff["next"], handoff["failed"]) == (returned, f"/?signin=expired&oauth_state_id={STATE}")

    cookie_from(bank_app, monkeypatch, handoff)
    at, calls = browser_opens(monkeypatch, handoff["next"], {"kind": "success", **success})
    assert at.title[0].value == "Accounts"
    [opened] = calls
    assert opened["link_token"] == start.link_token and opened["key"] == f"plaid_link_{start.link_session_id}"
    assert opened["received_redirect_uri"] == BROWSER_URL + returned  # window.location.href on the bank's return
    assert "Linked Maple Credit Union" in everything(at) and NOT_RESUMED not in everything(at)
    assert [i.institution_name for i in banking.list_items(c, uid)] == ["Maple Credit Union"]


def test_signed_out_oauth_return_survives_a_refused_hand_off(bank_app: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ticket died before the browser traded it: the sign-in page says so and still finishes the linking."""
    uid = bank_app.user("ann")
    start = banking.start_link(bank_app.c, uid)
    _, refused = sign_in_on_return(bank_app, monkeypatch, "ann", f"/?oauth_state_id={STATE}")
    said, handoff = sign_in_on_return(bank_app, monkeypatch, "ann", refused["failed"])
    assert "Your sign-in expired before it could finish" in said and "finish linking your bank" in said
    assert handoff["next"] == f"/?oauth_state_id={STATE}"
    cookie_from(bank_app, monkeypatch, handoff)
    _, calls = browser_opens(monkeypatch, handoff["next"])
    assert [call["link_token"] for call in calls] == [start.link_token]


@pytest.mark.parametrize(
    "param",
    [
        "https://evil.example/steal",
        "//evil.example",
        "/\\evil.example",
        "../admin",
        "abc&next=https://evil.example",
        "<script>alert(1)</script>",
        "x" * 129,
        "",
    ],
)
def test_a_param_that_is_not_an_oauth_state_id_is_dropped_at_sign_in(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch, param: str
) -> None:
    """Nothing the visitor sends picks where sign-in goes: an odd oauth_state_id is dropped, the user lands home."""
    with_redirect_uri(bank_app, monkeypatch, f"{BROWSER_URL}/accounts")
    uid = bank_app.user("ann")
    banking.start_link(bank_app.c, uid)  # open: only the parameter stands between this and a resumed Link
    said, handoff = sign_in_on_return(bank_app, monkeypatch, "ann", "/?" + urlencode({"oauth_state_id": param}))
    assert (handoff["next"], handoff["failed"]) == ("/", "/?signin=expired")
    assert "finish linking your bank" not in said
    cookie_from(bank_app, monkeypatch, handoff)
    at, calls = browser_opens(monkeypatch, handoff["next"])
    assert calls == [] and at.title[0].value != "Accounts"


def test_signed_out_oauth_return_never_resumes_another_users_link(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's bank sign-in is open; Ann comes back from a bank and signs in: she is told, Bob's stays his."""
    c = bank_app.c
    ann, bob = bank_app.user("ann"), bank_app.user("bob")
    bobs = banking.start_link(c, bob)
    _, handoff = sign_in_on_return(bank_app, monkeypatch, "ann", f"/?oauth_state_id={STATE}")
    assert handoff["next"] == f"/?oauth_state_id={STATE}"
    cookie_from(bank_app, monkeypatch, handoff)
    at, calls = browser_opens(monkeypatch, handoff["next"], {"kind": "success", "public_token": "x", "metadata": {}})
    assert calls == [] and at.title[0].value == "Accounts"
    assert warnings(at) == [NOT_RESUMED] and "Link a bank" in labels(at)
    assert banking.list_items(c, ann) == []
    resumed = banking.resume_link(c, bob)
    assert resumed is not None and resumed.link_session_id == bobs.link_session_id


class FakeGrid:
    """``st.dataframe`` for the transactions grid, remembering a selection per widget key like Streamlit."""

    def __init__(self, real: Any) -> None:
        self.real, self.picked, self.key, self.data = real, {}, "", None  # type: ignore[var-annotated]

    def __call__(self, data: Any, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
        if not (key or "").startswith("tx_grid_"):
            return self.real(data, *args, key=key, **kwargs)
        self.key, self.data = str(key), data
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
    first = ledger.list_transactions(c, user.id)[0]
    assert (first.merchant_name or first.name) in at.subheader[0].value

    # While the user types, the bot brings a newer transaction: row 0 is now another one.
    bank_app.demo.mutate(bank_app.plaid_item_id(item.id), "add", cents=999, name="BRAND NEW", date=date(2031, 1, 1))
    sync.sync_item(c, user.id, item.id)
    assert ledger.list_transactions(c, user.id)[0].name == "BRAND NEW"
    note = next(t for t in at.text_area if t.label == "Note")
    note.input("dinner with Sam")
    at = click(at, "Save")
    assert not at.exception, at.exception
    noted = [(t.transaction_id, t.note, t.category_override) for t in ledger.list_transactions(c, user.id) if t.note]
    assert noted == [(first.transaction_id, "dinner with Sam", None)]  # the bank's category is not frozen

    # Another tab saves an edit of the same transaction; this form, drawn before it, must not overwrite it.
    sync.edit_transaction(c, user.id, first.transaction_id, note="from the other tab")
    next(t for t in at.text_area if t.label == "Note").input("stale words")
    at = click(at, "Save")
    assert ledger.STALE_EDIT in [e.value for e in at.error]
    assert sync.get_transaction(c, user.id, first.transaction_id).note == "from the other tab"
    assert next(t for t in at.text_area if t.label == "Note").value == "from the other tab"  # shown as stored now

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
    assert list(at.dataframe[0].value["Result"]) == ["synced", "needs sign-in"]


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

    from services import audit
    from services.export import COLUMNS

    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "fay")
    item = bank_app.link(user.id)
    sync.sync_item(c, user.id, item.id)
    at = open_page("transactions.py")
    at.date_input(key="export_from").set_value(date(2031, 1, 2))
    at.date_input(key="export_to").set_value(date(2031, 1, 1))
    at = click(at, "Prepare the file")
    assert "start date is after the end date" in everything(at) and "export_file" not in at.session_state
    at.date_input(key="export_from").set_value(None)
    at.date_input(key="export_to").set_value(None)
    at.text_input(key="export_password").input("not my password at all")
    at = click(at, "Prepare the file")
    assert "That password is not right." in everything(at) and "export_file" not in at.session_state
    at.text_input(key="export_password").input(PASSWORD)
    at = click(at, "Prepare the file")
    data, n = at.session_state["export_file"]
    table = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert tuple(table[0]) == COLUMNS and len(table) - 1 == n == len(ledger.list_transactions(c, user.id, limit=10**6))
    assert "transactions_exported" in [e.event for e in audit.list_events(c, user.id)]


def test_a_hostile_institution_name_is_shown_as_text_not_markdown(
    bank_app: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security bar G2/L10: bank-supplied text never becomes a link or formatting in Markdown widgets."""
    c = bank_app.c
    user = signed_in(bank_app, monkeypatch, "fay")
    item = bank_app.link(user.id)
    bank_app.demo.set_fault(bank_app.plaid_item_id(item.id), "login_required")
    assert sync.sync_item(c, user.id, item.id, explicit=True).status == "login_required"
    hostile = "**Evil** [click](javascript:alert(1))"
    rename_bank(bank_app, item.id, hostile)
    for page in ("accounts.py", "sync_history.py", "home.py"):
        shown = everything(open_page(page))
        assert r"\*\*Evil\*\* \[click\]\(javascript\:alert\(1\)\)" in shown, page
        assert hostile not in shown, page


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
