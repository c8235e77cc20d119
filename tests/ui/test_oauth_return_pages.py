"""Coming back from a bank's OAuth sign-in (AppTest): Link resumes for its owner, signed in or after signing in.

The Link component itself runs only in a browser (tests/e2e/test_oauth_return_browser.py); here its seam records
what the page hands it.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

import pages.ui.plaid_link as plaid_link_module
from pages.ui import session as ui_session
from pages.ui import state
from services import auth, banking
from tests.integration.auth_support import PASSWORD, code_at, enable_totp, make_user, sign_in
from tests.integration.conftest_bank import Bank
from tests.ui.bank_support import click, everything, signed_in, wire_app
from tests.ui.conftest import ENTRY

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def bank_app(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> Bank:
    return wire_app(bank, monkeypatch)


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
    assert calls[0]["link_token"] == start.link_token and calls[0]["label"] == "Sign in to Maple Credit Union again"
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
