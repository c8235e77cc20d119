"""The database goes away while people use the app: the page says so in words, and works again once it is back.

Security bar, faults catalogue ("DB down"): no traceback or bare error box in the browser, nothing about the
database (address, statement, parameters) on the page, and a log line for the operator without secrets.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from streamlit.testing.v1 import AppTest

from models import PlaidItem
from pages.ui import outage, state
from pages.ui import session as ui_session
from pages.ui.outage import MESSAGE
from services import sync
from services.container import Container
from services.db import make_engine, unit_of_work
from services.ratelimit import TokenBucket
from tests.integration.auth_support import make_user, sign_in
from tests.integration.conftest_bank import Bank
from tests.ui.bank_support import everything, open_page, signed_in, wire_app
from tests.ui.conftest import ENTRY

pytestmark = pytest.mark.usefixtures("fast_hashing")
GONE = "postgresql+psycopg2://finsync:s3cret-pw@127.0.0.1:1/finsync"  # nothing listens on port 1


def serve(monkeypatch: pytest.MonkeyPatch, c: Container) -> None:
    """The app's process-wide container from now on (the cache is emptied, as after a restart of the pool)."""
    state.container.clear()
    monkeypatch.setattr(state, "build_container", lambda: c)


def shown(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_a_visitor_sees_words_when_the_database_is_down(
    container: Container, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(outage, "_said", TokenBucket(rate=1 / 60, burst=1))  # no line said yet in this process
    gone = dataclasses.replace(container, engine=make_engine(GONE))
    serve(monkeypatch, gone)
    monkeypatch.setattr(ui_session, "read_cookie", lambda: "a-session-token-from-the-cookie")
    with caplog.at_level(logging.ERROR, logger="finsync.pages"):
        at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE]
    page = "\n".join(str(e.value) for e in (*at.error, *at.markdown, *at.caption))
    assert "127.0.0.1" not in page and "SELECT" not in page and "s3cret" not in page
    (line,) = [r.getMessage() for r in caplog.records if r.name == "finsync.pages"]
    assert line.startswith("a page could not use the database:") and "port 1 failed" in line
    assert "s3cret" not in line and "SELECT" not in line and "a-session-token" not in line
    with caplog.at_level(logging.ERROR, logger="finsync.pages"):
        at.run()  # the same outage a moment later: said on the page again, not in the log (a line a minute)
    assert shown(at) == [MESSAGE] and len([r for r in caplog.records if r.name == "finsync.pages"]) == 1


def test_a_signed_in_user_whose_database_goes_away_sees_words_then_carries_on(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "ann")
    token = sign_in(container, "ann")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: token)
    serve(monkeypatch, container)
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert at.title[0].value == "Welcome, ann"

    serve(monkeypatch, dataclasses.replace(container, engine=make_engine(GONE)))  # the server goes down
    at.switch_page("transactions.py").run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE]

    serve(monkeypatch, container)  # back up: the same browser session goes on, still signed in
    next(b for b in at.button if b.label == "Try again").click().run()
    assert not at.exception and shown(at) == []
    assert at.title[0].value == "Transactions"


def test_the_accounts_page_following_a_sync_says_so_in_its_corner_and_keeps_the_page(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part of Accounts that follows a running sync asks the database every 2 s: when it is gone, that part
    says so (no button: the next poll tries again) and the rest of the page stays as it was."""
    from sqlalchemy.exc import OperationalError

    from services.sync_state import acquire, worker_name

    wire_app(bank, monkeypatch)
    user = signed_in(bank, monkeypatch, "hal")
    item = bank.link(user.id)
    with unit_of_work(bank.c.engine) as session:  # the bot syncs this bank: the page follows it
        row = session.get(PlaidItem, item.id)
        assert row is not None and acquire(session, row, worker_name("scheduler"), bank.c.clock())
    at = open_page("accounts.py")
    assert "Syncing in the background" in everything(at)

    real, calls = sync.item_sync_status, []

    def gone_at_the_poll(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # the page's own read works; the follow-up poll's finds the database gone
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sync, "item_sync_status", gone_at_the_poll)
    at.run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE]
    assert "Try again" not in [b.label for b in at.button]
    assert at.title[0].value == "Accounts" and "Sync now" in [b.label for b in at.button]  # the page is still there


def test_the_database_gone_when_a_form_is_sent_is_said_in_words_once(
    bank: Bank, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepare the file acts in a callback, before the page and its outage notice: the outage it meets is said in
    the same words (once, though the page meets it too), logged, and no file is made; back up, it works."""
    from tests.integration.auth_support import PASSWORD

    monkeypatch.setattr(outage, "_said", TokenBucket(rate=1 / 60, burst=1))
    wire_app(bank, monkeypatch)
    user = signed_in(bank, monkeypatch, "ivy")
    sync.sync_item(bank.c, user.id, bank.link(user.id).id)
    at = open_page("transactions.py")
    at.text_input(key="export_password").input(PASSWORD)
    serve(monkeypatch, dataclasses.replace(bank.c, engine=make_engine(GONE)))
    with caplog.at_level(logging.ERROR, logger="finsync.pages"):
        at = next(b for b in at.button if b.label == "Prepare the file").click().run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE] and "export_file" not in at.session_state
    (line,) = [r.getMessage() for r in caplog.records if r.name == "finsync.pages"]
    assert line.startswith("a page could not use the database:") and "s3cret" not in line

    serve(monkeypatch, bank.c)  # back up: the same form, the password typed again
    at = next(b for b in at.button if b.label == "Try again").click().run()
    assert shown(at) == [] and at.title[0].value == "Transactions"
    at.text_input(key="export_password").input(PASSWORD)
    at = next(b for b in at.button if b.label == "Prepare the file").click().run()
    assert not at.exception and shown(at) == [] and at.session_state["export_file"][1] > 0


def test_an_outage_only_the_form_meets_is_said_above_the_page(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blip: the callback meets the outage, the page a moment later does not. The words come, and the page too."""
    from sqlalchemy.exc import OperationalError

    from services import export
    from tests.integration.auth_support import PASSWORD

    wire_app(bank, monkeypatch)
    user = signed_in(bank, monkeypatch, "jon")
    sync.sync_item(bank.c, user.id, bank.link(user.id).id)
    at = open_page("transactions.py")

    def blip(*args: object, **kwargs: object) -> object:
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(export, "export_bytes", blip)
    at.text_input(key="export_password").input(PASSWORD)
    at = next(b for b in at.button if b.label == "Prepare the file").click().run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE] and at.title[0].value == "Transactions" and "export_file" not in at.session_state
    at.run()
    assert shown(at) == []  # said once, not on every run after


def test_the_database_gone_when_signing_in_is_said_in_words_and_the_password_is_not_kept(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sign-in form acts in a callback (so a refused password leaves the screen): an outage there is said in
    the same words, once; back up, the same form signs in."""
    from tests.integration.auth_support import PASSWORD

    make_user(container, "kim")
    monkeypatch.setattr(ui_session, "read_cookie", lambda: None)
    serve(monkeypatch, container)
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    at.text_input(key="sign_in_login").input("kim")
    at.text_input(key="sign_in_password").input(PASSWORD)
    serve(monkeypatch, dataclasses.replace(container, engine=make_engine(GONE)))
    at = next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    assert shown(at) == [MESSAGE] and "handoff_ticket" not in at.session_state
    assert at.text_input(key="sign_in_password").value == ""

    serve(monkeypatch, container)
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception and shown(at) == [] and at.session_state["handoff_ticket"]
