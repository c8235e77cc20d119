"""Linking banks as a person does it, in Chromium, through the Link component and the demo bank."""

from __future__ import annotations

import sqlite3

import pytest

from tests.e2e.conftest import Server, csp_violations, shot, sign_in

pytestmark = pytest.mark.e2e
PASSWORD = "granite osprey lullaby 4410 fern"


def link_through_component(
    page: object, institution: str, password: str = "pass_good", untick: tuple[str, ...] = ()
) -> None:
    """Link a bank as a person does: pick it, sign in, leave the accounts in ``untick`` unshared, continue."""
    page.get_by_role("button", name="Link a bank").click()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Choose your bank").click()  # type: ignore[attr-defined]
    page.get_by_test_id("demo-link-dialog").wait_for(timeout=20_000)  # type: ignore[attr-defined]
    page.locator(f'[data-institution-id="{institution}"]').click()  # type: ignore[attr-defined]
    page.get_by_label("Username").fill("user_good")  # type: ignore[attr-defined]
    page.get_by_label("Password", exact=True).last.fill(password)  # type: ignore[attr-defined]
    page.get_by_test_id("demo-link-submit").click()  # type: ignore[attr-defined]
    if password != "pass_good":
        return  # Link shows the bank's refusal; there are no accounts to pick
    page.get_by_test_id("demo-link-accounts").wait_for(timeout=20_000)  # type: ignore[attr-defined]
    for key in untick:
        page.locator(f'[data-account-key="{key}"]').uncheck()  # type: ignore[attr-defined]
    page.get_by_test_id("demo-link-continue").click()  # type: ignore[attr-defined]


def reload_until_repair_is_offered(page: object, bank: str, timeout: float = 90.0) -> None:
    """Reload until ``bank``'s card offers "Repair connection": the bank's webhook is delivered and handled out of
    band (the CLI returns before it lands), and the page polls only while a bank is syncing. Each reload is let
    finish drawing that card first, however slow the machine is, before the button is looked for."""
    import time

    deadline = time.monotonic() + timeout
    button = page.get_by_role("button", name="Repair connection")  # type: ignore[attr-defined]
    while True:
        page.reload()  # type: ignore[attr-defined]
        page.get_by_role("heading", name=bank).wait_for(timeout=30_000)  # type: ignore[attr-defined]
        try:
            button.wait_for(timeout=5_000)
            return
        except Exception:  # a playwright TimeoutError: not handled yet
            if time.monotonic() > deadline:
                raise


def test_link_two_banks_repair_one_remove_one(server: Server, browser: object) -> None:
    made = server.cli("users", "create", "--email", "lin@example.com", "--username", "lin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    violations = csp_violations(page)  # Link's stand-in loads, connects and frames under the page's policy
    sign_in(page, server, "lin", PASSWORD)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_text("No bank linked yet").wait_for(timeout=20_000)

    # Link is a modal dialog for the keyboard: focus is in it, Tab stays in it, Escape closes it.
    page.get_by_role("button", name="Link a bank").click()
    page.get_by_role("button", name="Choose your bank").click()
    dialog = page.get_by_test_id("demo-link-dialog")
    dialog.wait_for(timeout=20_000)
    inside = "() => document.querySelector('[data-testid=demo-link-dialog]').contains(document.activeElement)"
    assert page.evaluate(inside)
    for _ in range(6):  # more presses than the dialog has controls: focus comes round, never leaves
        page.keyboard.press("Tab")
        assert page.evaluate(inside)
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(inside)
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    page.get_by_role("button", name="Link a bank").wait_for(timeout=20_000)  # Link exited: the page is back

    # Wrong password at the bank: an error inside Link, nothing linked.
    link_through_component(page, "ins_demo_1", password="pass_bad")
    page.get_by_test_id("demo-link-error").get_by_text("incorrect").wait_for(timeout=20_000)
    page.get_by_test_id("demo-link-close").click()
    page.get_by_text("No bank linked yet").wait_for(timeout=20_000)

    link_through_component(page, "ins_demo_1")
    page.get_by_text("Linked First Demo Bank").wait_for(timeout=30_000)
    # Its first sync starts at once (not at the scheduler's next tick) and the page updates by itself.
    page.get_by_text("First Demo Bank is synced").wait_for(timeout=20_000)
    page.get_by_text("Up to date.").wait_for(timeout=5_000)
    link_through_component(page, "ins_demo_2", untick=("savings",))  # Link's account picker: share two of three
    page.get_by_text("Linked Maple Credit Union with 2 accounts").wait_for(timeout=30_000)
    page.get_by_text("Everyday Checking").first.wait_for(state="attached")  # a canvas grid: cells stay hidden
    # Link is done: its "Cancel" goes once the page has rerun, leaving "Link a bank" alone
    page.locator(".st-key-link_cancel").wait_for(state="detached", timeout=20_000)
    page.get_by_role("button", name="Link a bank").wait_for(timeout=5_000)
    shot(page, "accounts-two-banks")

    # The same login again is refused with a pointer to repair.
    link_through_component(page, "ins_demo_1")
    page.get_by_text("already linked First Demo Bank").wait_for(timeout=30_000)

    # A third bank, linked by an operator from the CLI (the same demo bank serves the app and the CLI),
    # then its login expires: the demo bank sends the signed ITEM ERROR webhook to /webhooks/plaid.
    user = ("--email", "lin@example.com", "--institution", "ins_demo_3")
    linked = server.cli("plaid", "link-sandbox", *user)
    assert linked.returncode == 0, linked.stderr
    broken = server.cli("plaid", "reset-login", *user)
    assert broken.returncode == 0, broken.stderr
    reload_until_repair_is_offered(page, "Harbor National")
    shot(page, "accounts-needs-repair")
    page.get_by_role("button", name="Repair connection").click()
    page.get_by_role("button", name="Sign in to Harbor National again").click()
    page.get_by_test_id("demo-link-dialog").wait_for(timeout=20_000)
    page.locator('[data-institution-id="ins_demo_3"]').click()
    page.get_by_label("Username").fill("user_good")
    page.get_by_label("Password", exact=True).last.fill("pass_good")
    page.get_by_test_id("demo-link-submit").click()
    page.get_by_text("Harbor National is connected again").wait_for(timeout=30_000)
    page.get_by_role("button", name="Repair connection").wait_for(state="detached", timeout=15_000)
    page.get_by_text("Harbor National is synced").wait_for(timeout=30_000)  # the page followed the bot's sync
    assert page.get_by_text("Harbor National is connected again").is_visible()  # and still says what came first
    shot(page, "accounts-repaired")

    # The bank opens a new account and says so (Plaid's sandbox webhook); Repair asks whether to share it.
    fired = server.cli("plaid", "fire-webhook", *user, "--code", "NEW_ACCOUNTS_AVAILABLE")
    assert fired.returncode == 0, fired.stderr
    reload_until_repair_is_offered(page, "Harbor National")
    page.get_by_role("button", name="Repair connection").click()
    page.get_by_role("button", name="Sign in to Harbor National again").click()
    page.locator('[data-institution-id="ins_demo_3"]').click()
    page.get_by_label("Username").fill("user_good")
    page.get_by_label("Password", exact=True).last.fill("pass_good")
    page.get_by_test_id("demo-link-submit").click()
    page.get_by_test_id("demo-link-accounts").wait_for(timeout=20_000)
    assert page.get_by_role("heading", name="New accounts").is_visible()
    assert page.locator("[data-account-key]").count() == 1  # only the account opened since
    shot(page, "accounts-new-account-picker")
    page.get_by_test_id("demo-link-continue").click()
    page.get_by_text("Harbor National now shares the accounts you chose").wait_for(timeout=30_000)
    page.get_by_text("Holiday Savings").first.wait_for(state="attached", timeout=15_000)
    page.get_by_text("Harbor National is synced").wait_for(timeout=30_000)  # the page has settled

    # Remove one bank, keeping its history: the page lists what was kept.
    assert page.get_by_role("heading", name="Maple Credit Union").count() == 1
    page.get_by_role("button", name="Remove").nth(1).click()
    page.get_by_text("Keep its accounts and transactions").click()
    assert page.get_by_text("its past syncs stay in Sync history, marked (removed)").is_visible()  # what "keep" keeps
    shot(page, "accounts-remove-choice")
    page.locator('input[aria-label="Your password"]:visible').fill(PASSWORD)  # removing a bank asks who you are
    page.get_by_role("button", name="Remove this bank").click()
    try:
        page.get_by_text("Removed Maple Credit Union").wait_for(timeout=30_000)
        page.get_by_role("heading", name="Maple Credit Union").wait_for(state="detached", timeout=15_000)  # its card
        page.get_by_role("heading", name="Kept from removed banks").wait_for(timeout=15_000)
    finally:
        shot(page, "accounts-after-remove")
    # the removed card's open popover did not pass to the bank that took its place
    assert not page.get_by_text("Disconnect Harbor National").is_visible()

    # Later its whole kept history goes in one deletion: both accounts chosen, the password once.
    page.get_by_role("button", name="Delete kept history").click()
    for account in ("Everyday Checking", "Rewards Card"):
        page.get_by_test_id("stMultiSelect").locator("input").click()  # the accounts' chooser
        page.get_by_role("option").filter(has_text=account).click()
        page.keyboard.press("Escape")
    page.locator('input[aria-label="Your password"]:visible').fill(PASSWORD)
    shot(page, "accounts-kept-delete-chosen")
    page.get_by_role("button", name="Delete for good").click()
    page.get_by_text("Deleted the kept history of Maple Credit Union: Everyday Checking").wait_for(timeout=30_000)
    page.get_by_role("heading", name="Kept from removed banks").wait_for(state="detached", timeout=15_000)
    shot(page, "accounts-kept-deleted")
    assert violations == []
    page.context.close()

    # The activity log names where each bank action came from: this browser; the operator's CLI has no address.
    with sqlite3.connect(server.data_dir / "finsync.db") as db:
        rows = db.execute(
            "SELECT event, ip, detail FROM audit_events WHERE event LIKE 'bank_%' AND user_id ="
            " (SELECT id FROM users WHERE username = 'lin') ORDER BY at"
        ).fetchall()
    by_browser = [
        (event, ip) for event, ip, detail in rows if "Harbor National" not in detail or event != "bank_linked"
    ]
    assert [event for event, _ in by_browser] == [
        "bank_link_failed",  # the wrong password, then Link closed
        "bank_linked",
        "bank_linked",
        "bank_link_failed",  # the same login again, refused
        "bank_repaired",
        "bank_repaired",
        "bank_removed",
    ], rows
    assert {ip for _, ip in by_browser} == {"127.0.0.1"}, rows
    assert [ip for event, ip, detail in rows if event == "bank_linked" and "Harbor National" in detail] == [""]
