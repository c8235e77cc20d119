"""The admin page in Chromium: refused until two-factor is on, then users, audit, outbox and revocations."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pyotp
import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "granite meadow copper 2210 sparrow"


def turn_on_two_factor(page: object) -> None:
    """On Settings: enrol an authenticator with the secret shown, as a person types it in, and confirm."""
    page.get_by_role("tab", name="Two-factor").click()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Set up two-factor sign-in").click()  # type: ignore[attr-defined]
    grouped = re.compile(r"^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$")  # as authenticator apps show it
    secret_block = page.locator("code").filter(has_text=grouped)  # type: ignore[attr-defined]
    secret_block.first.wait_for(timeout=20_000)
    secret = secret_block.first.inner_text().strip().replace(" ", "")
    qr = page.get_by_role("img", name="QR code to scan with your authenticator app")  # type: ignore[attr-defined]
    assert qr.count() == 1 and qr.bounding_box()["width"] >= 150  # named for screen readers, big enough to scan
    assert qr.evaluate("i => i.complete && i.naturalWidth > 0")  # drawn: neither the sanitiser nor the CSP stopped it
    shot(page, "two-factor-setup")
    page.get_by_label("Enter the 6-digit code the app shows").fill(pyotp.TOTP(secret).now())  # type: ignore[attr-defined]
    page.locator('input[aria-label="Your password"]:visible').fill(PASSWORD)  # type: ignore[attr-defined]  # other tabs ask too
    page.get_by_role("button", name="Turn on").click()  # type: ignore[attr-defined]
    page.get_by_text("Two-factor sign-in is on.").wait_for(timeout=20_000)  # type: ignore[attr-defined]


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
    turn_on_two_factor(page)

    page.goto(f"{server.url}/admin")
    page.get_by_role("tab", name="Users").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Bank revocations").click()
    page.get_by_text("No bank connections waiting to be revoked.").wait_for(timeout=20_000)
    shot(page, "admin-revocations")
    page.get_by_role("tab", name="Sync bot").click()  # the app's own scheduler runs in the server, with no job late
    page.get_by_text("The bot keeps up").wait_for(timeout=20_000)
    page.get_by_text("This server's scheduler runs.").wait_for(timeout=5_000)
    shot(page, "admin-sync-bot")


@pytest.fixture(scope="module")
def server_without_mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app with SMTP_URL pointing at a port where nothing listens: every send is refused, as in an outage."""
    with socket.socket() as probe:  # a free port, closed again: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield from start_server(tmp_path_factory, SMTP_URL=f"smtp://127.0.0.1:{port}")


def test_with_the_mail_server_down_mail_waits_and_the_admin_sees_it(
    server_without_mail: Server, browser: object
) -> None:
    server = server_without_mail
    made = server.cli("users", "create", "--email", "ops@example.com", "--username", "ops", "--admin",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "ops", PASSWORD)
    page.get_by_role("link", name="Settings").click()
    turn_on_two_factor(page)  # its notice cannot be sent: it is queued

    page.goto(f"{server.url}/admin")
    page.get_by_role("tab", name="Outbox").click()
    page.get_by_text("could not be sent yet").wait_for(timeout=30_000)
    shot(page, "admin-outbox-waiting")
    assert server.outbox() == []  # nothing pretended to be sent
