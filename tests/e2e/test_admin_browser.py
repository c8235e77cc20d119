"""The admin page in Chromium: refused until two-factor is on, then users, audit, outbox and revocations."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.e2e.conftest import Server, shot, sign_in

pytestmark = pytest.mark.e2e
PASSWORD = "granite meadow copper 2210 sparrow"


def test_an_admin_turns_on_two_factor_before_the_admin_page_opens(server: Server, browser: object) -> None:
    made = server.cli("users", "create", "--email", "root@example.com", "--username", "root", "--admin",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "root", PASSWORD)

    page.goto(f"{server.url}/admin")
    page.get_by_text("The admin page needs two-factor sign-in").wait_for(timeout=30_000)
    assert page.get_by_role("tab", name="Users").count() == 0
    shot(page, "admin-needs-two-factor")

    page.get_by_role("link", name="Open Settings").click()
    page.get_by_role("tab", name="Two-factor").click()
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    secret_block = page.locator("code").filter(has_text=re.compile(r"^[A-Z2-7]{32}$"))
    secret_block.first.wait_for(timeout=20_000)
    secret = secret_block.first.inner_text().strip()
    page.get_by_label("Enter the 6-digit code the app shows").fill(pyotp.TOTP(secret).now())
    page.locator('input[aria-label="Your password"]:visible').fill(PASSWORD)  # other tabs ask for it too
    page.get_by_role("button", name="Turn on").click()
    page.get_by_text("Two-factor sign-in is on.").wait_for(timeout=20_000)

    page.goto(f"{server.url}/admin")
    page.get_by_role("tab", name="Users").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Bank revocations").click()
    page.get_by_text("No bank connections waiting to be revoked.").wait_for(timeout=20_000)
    shot(page, "admin-revocations")
