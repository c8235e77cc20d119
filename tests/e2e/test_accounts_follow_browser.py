"""The Accounts page follows the bot's sync by itself, and stops the moment its session ends elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "copper heron lattice 6631 dune"


@pytest.fixture(scope="module")
def slow_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A scheduler that, after its first pass, waits an hour: only the page's own polling changes what it shows."""
    yield from start_server(tmp_path_factory, SYNC_TICK_SECONDS="3600")


def test_a_page_waiting_for_a_sync_notices_its_session_ended_elsewhere(slow_bot: Server, browser: object) -> None:
    server = slow_bot
    made = server.cli("users", "create", "--email", "pat@example.com", "--username", "pat", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    waiting = browser.new_context().new_page()  # type: ignore[attr-defined]
    other = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(waiting, server, "pat", PASSWORD)  # both sign in first: a sign-in wakes the bot, with nothing to sync
    sign_in(other, server, "pat", PASSWORD)
    linked = server.cli("plaid", "link-sandbox", "--email", "pat@example.com")  # by an operator: nobody wakes the bot
    assert linked.returncode == 0, linked.stderr
    waiting.get_by_role("link", name="Accounts").click()
    waiting.get_by_text("Syncing in the background").wait_for(timeout=20_000)  # the first sync has not run

    other.get_by_role("link", name="Settings").click()
    other.get_by_role("tab", name="Sessions").click()
    other.get_by_role("button", name="Sign out all other sessions").click()
    other.get_by_text("Signed out 1 other session").wait_for(timeout=20_000)

    # No click on the waiting page: its polling finds the session gone and the page asks to sign in.
    waiting.get_by_label("Email or username").wait_for(timeout=20_000)
    assert waiting.get_by_text("Syncing in the background").count() == 0
    shot(waiting, "accounts-session-ended-while-waiting")
    waiting.context.close()
    other.context.close()


def test_an_open_accounts_page_shows_what_happens_to_a_bank_meanwhile(slow_bot: Server, browser: object) -> None:
    """Nothing syncing, no click: a bank that stops working (its webhook), or is synced by someone else (cron, a
    worker), shows on a page left open, within the quiet poll's interval."""
    server = slow_bot
    made = server.cli("users", "create", "--email", "una@example.com", "--username", "una", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    user = ("--email", "una@example.com")
    linked = server.cli("plaid", "link-sandbox", *user, "--institution", "ins_demo_2")
    assert linked.returncode == 0, linked.stderr
    synced = server.cli("sync", *user)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "una", PASSWORD)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("heading", name="Maple Credit Union").wait_for(timeout=20_000)
    page.get_by_text("Up to date.").wait_for(timeout=20_000)
    assert page.get_by_role("button", name="Repair connection").count() == 0

    broken = server.cli("plaid", "reset-login", *user, "--institution", "ins_demo_2")  # the bank's signed webhook
    assert broken.returncode == 0, broken.stderr
    page.get_by_role("button", name="Repair connection").wait_for(timeout=60_000)  # no reload
    assert page.get_by_text("Your bank needs you to sign in again").first.is_visible()
    shot(page, "accounts-followed-a-webhook")
    page.context.close()


def test_a_second_click_on_sync_now_while_it_syncs_syncs_once(slow_bot: Server, browser: object) -> None:
    """Streamlit holds a click made while the sync runs until it is done, then runs it: that must not sync the
    bank a second time, and the first sync's outcome is what the person reads."""
    server = slow_bot
    made = server.cli("users", "create", "--email", "val@example.com", "--username", "val", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    linked = server.cli("plaid", "link-sandbox", "--email", "val@example.com", "--institution", "ins_demo_2")
    assert linked.returncode == 0, linked.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "val", PASSWORD)
    page.get_by_role("link", name="Accounts").click()
    button = page.get_by_role("button", name="Sync now")
    button.click()
    page.get_by_text("Syncing Maple Credit Union").wait_for(timeout=30_000)  # the sync is under way
    button.click(timeout=5_000)
    # The sync's own words, or, when Streamlit stopped that run for the click, the page following it to its end
    told = page.get_by_text(re.compile(r"^Maple Credit Union is (up to date: \d+ new|synced: see Transactions)"))
    told.first.wait_for(timeout=30_000)
    page.wait_for_timeout(2_000)  # time for a second sync to start, were it going to
    assert told.count() >= 1  # the outcome stays on the page
    runs = [line for line in server.log.read_text().splitlines() if '"logger": "finsync.sync"' in line]
    assert sum("trigger=manual status=ok" in line for line in runs) == 1, runs
    page.context.close()
