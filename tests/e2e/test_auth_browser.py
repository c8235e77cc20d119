"""Sign-in as a person does it, in Chromium: register, verify, sign in, reload, sign out, replay."""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "velvet compass harbor 1871 tundra"


def _verify_link(server: Server) -> str:
    for raw in reversed(server.outbox()):
        body = str(email.message_from_string(raw, policy=email.policy.default).get_content())  # type: ignore[attr-defined]
        found = re.search(r"\?verify=([A-Za-z0-9_\-]+)", body)
        if found:
            return f"{server.url}/?verify={found.group(1)}"
    raise AssertionError("no verification email in the outbox")


def assert_cookie_is_dead(browser: object, server: Server, cookie: dict[str, object], username: str) -> None:
    """A copy of ``cookie`` in another browser opens the sign-in page, not ``username``'s account."""
    thief = browser.new_context()  # type: ignore[attr-defined]
    thief.add_cookies([cookie])
    stolen = thief.new_page()
    stolen.goto(server.url)
    stolen.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    assert stolen.get_by_text(f"Welcome, {username}").count() == 0
    thief.close()


def test_register_verify_sign_in_reload_sign_out(server: Server, browser: object) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(server.url)
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)

    page.get_by_role("link", name="Create account").first.click()
    page.get_by_role("heading", name="Create your finsync account").wait_for(timeout=20_000)
    page.wait_for_timeout(500)  # let the page's first run settle before typing (a rerun would reset fields)
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    try:
        page.get_by_text("Check your email").wait_for(timeout=20_000)
    except Exception:
        shot(page, "auth-register-failed")
        raise
    shot(page, "auth-registered")

    page.goto(_verify_link(server))
    page.get_by_role("button", name="Confirm my email address").click()
    page.get_by_text("is verified").wait_for(timeout=20_000)

    page.goto(server.url)
    page.get_by_label("Email or username").fill("carol")
    page.get_by_label("Password", exact=True).fill("not my password at all")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Sign-in failed: check your details and try again.").wait_for(timeout=30_000)
    shot(page, "auth-sign-in-refused")
    # the refused password is gone from the field, the login stays to correct
    assert page.get_by_label("Password", exact=True).input_value() == ""
    assert page.get_by_label("Email or username").input_value() == "carol"
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome, carol").wait_for(timeout=30_000)
    shot(page, "auth-signed-in")
    cookies = context.cookies()
    session_cookie = next(c for c in cookies if c["name"] == "finsync_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("finsync_session") == -1  # not readable from scripts

    page.reload()
    page.get_by_text("Welcome, carol").wait_for(timeout=30_000)

    with page.expect_response("**/auth/logout") as logout:
        page.get_by_role("button", name="Sign out").click()
    assert logout.value.status == 200
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    page.reload()
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    assert not any(c["name"] == "finsync_session" for c in context.cookies())

    assert_cookie_is_dead(browser, server, session_cookie, "carol")  # a copy taken before sign-out
    context.close()


def _hand_off_status(page: object, server: Server, login: str) -> int:
    """Sign in through the form with the right password; the status the ticket route answered the browser."""
    page.goto(server.url)  # type: ignore[attr-defined]
    page.get_by_label("Email or username").fill(login)  # type: ignore[attr-defined]
    page.get_by_label("Password", exact=True).fill(PASSWORD)  # type: ignore[attr-defined]
    with page.expect_response("**/auth/session") as handoff:  # type: ignore[attr-defined]
        page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    return int(handoff.value.status)


def test_a_dead_hand_off_ticket_says_so_on_the_sign_in_page(server: Server, browser: object) -> None:
    """The 401 of the ticket route (expired or used ticket) brings the user back to sign-in with a message."""
    made = server.cli("users", "create", "--email", "dana@example.com", "--username", "dana", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    # Swap the fresh ticket for a dead one on its way out: the server itself answers 401.
    page.route("**/auth/session", lambda route: route.continue_(post_data="x" * 43))
    assert _hand_off_status(page, server, "dana") == 401
    page.get_by_text("Your sign-in expired before it could finish. Please sign in again.").wait_for(timeout=30_000)
    shot(page, "auth-handoff-expired")
    assert not any(c["name"] == "finsync_session" for c in context.cookies())
    page.unroute("**/auth/session")
    page.get_by_label("Email or username").fill("dana")  # and signing in again works
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome, dana").wait_for(timeout=30_000)
    context.close()


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the dead tickets posted here hold back this address's sign-ins for 15 minutes."""
    yield from start_server(tmp_path_factory)


def test_a_hand_off_refused_for_too_many_dead_tickets_says_so_on_the_sign_in_page(
    own_server: Server, browser: object
) -> None:
    """After ten dead tickets from this address the ticket route answers 429: the person is told that, and for how
    long, not that their sign-in expired (which signing in again would only repeat)."""
    server = own_server
    made = server.cli("users", "create", "--email", "erin@example.com", "--username", "erin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    for n in range(10):
        guess = urllib.request.Request(
            f"{server.url}/auth/session", data=f"dead-{n}".encode() * 8, headers={"Sec-Fetch-Site": "same-origin"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(guess, timeout=30)
        assert refused.value.code == 401
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    assert _hand_off_status(page, server, "erin") == 429
    said = re.compile(r"Too many failed sign-ins from your network\. Try again in 1[45] minutes\.")
    page.get_by_text(said).wait_for(timeout=30_000)
    shot(page, "auth-handoff-busy")
    assert page.get_by_text("Your sign-in expired").count() == 0
    # said once: the page then drops the words from its address, so a reload shows the plain form
    page.wait_for_url(lambda url: "wait=" not in url and "signin=" not in url, timeout=30_000)
    assert not any(c["name"] == "finsync_session" for c in context.cookies())
    context.close()


def test_deleting_the_account_says_so_and_clears_the_cookie(server: Server, browser: object) -> None:
    """The sign-in page that follows a deletion says it was done (no reload takes that away), the cookie is gone,
    and a copy of it opens nothing."""
    made = server.cli("users", "create", "--email", "erin@example.com", "--username", "erin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    sign_in(page, server, "erin", PASSWORD)
    cookie = next(c for c in context.cookies() if c["name"] == "finsync_session")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("tab", name="Email and account").click()
    page.get_by_role("heading", name="Delete my account").wait_for(timeout=20_000)
    form = page.locator("[data-testid=stForm]").filter(has_text="I understand this cannot be undone")
    form.get_by_label("Your password").fill(PASSWORD)
    form.get_by_text("I understand this cannot be undone").click()
    with page.expect_response("**/auth/logout") as logout:
        form.get_by_role("button", name="Delete my account").click()
    assert logout.value.status == 200
    page.get_by_text("Your account and everything in it are deleted").wait_for(timeout=30_000)
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # no reload comes to take the message away
    assert page.get_by_text("Your account and everything in it are deleted").is_visible()
    assert page.get_by_text("Sign in to open Settings").count() == 0  # not an invitation into the deleted account
    shot(page, "auth-account-deleted")
    assert not any(c["name"] == "finsync_session" for c in context.cookies())
    assert_cookie_is_dead(browser, server, cookie, "erin")
    context.close()


def test_a_reset_link_opened_while_signed_in_sets_the_password_and_signs_this_browser_out(
    server: Server, browser: object
) -> None:
    """Someone who forgot the password their browser is still signed in with opens the emailed link there: it
    offers the form (it showed Home), and once the password is set the browser drops its cookie and says so."""
    made = server.cli("users", "create", "--email", "rita@example.com", "--username", "rita", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    sign_in(page, server, "rita", PASSWORD)
    other = browser.new_context().new_page()  # type: ignore[attr-defined]
    other.goto(f"{server.url}/forgot_password")
    other.get_by_label("Your account's email address").fill("rita@example.com")
    other.get_by_role("button", name="Send me a reset link").click()
    other.get_by_text("If an account uses that address").wait_for(timeout=30_000)
    other.context.close()
    bodies = [str(email.message_from_string(raw, policy=email.policy.default).get_content()) for raw in server.outbox()]  # type: ignore[attr-defined]
    link = next(found.group(0) for body in bodies if (found := re.search(r"http\S+\?reset=[A-Za-z0-9_\-]+", body)))
    page.goto(link)
    page.get_by_text("You are signed in as rita").wait_for(timeout=30_000)
    fresh = "saffron glacier mosaic 6620 reed"
    page.get_by_label("New password", exact=True).fill(fresh)
    page.get_by_label("Repeat new password").fill(fresh)
    with page.expect_response("**/auth/logout") as logout:
        page.get_by_role("button", name="Set new password").click()
    assert logout.value.status == 200
    page.get_by_text("Your password is changed and every session was signed out").wait_for(timeout=30_000)
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    assert not any(c["name"] == "finsync_session" for c in context.cookies())
    sign_in(page, server, "rita", fresh)
    context.close()


def test_changing_email_after_a_wrong_password_keeps_the_address_typed(server: Server, browser: object) -> None:
    """Refused, the new address stays to be put right and the password goes; sent, both go."""
    made = server.cli("users", "create", "--email", "fred@example.com", "--username", "fred", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "fred", PASSWORD)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("tab", name="Email and account").click()
    shown = page.locator("[data-testid=stMarkdownContainer]").filter(has_text="Your email:")
    assert "fred@example.com" in shown.inner_text().replace("\u2060", "")  # reads as typed ...
    assert shown.locator("a").count() == 0  # ... and the browser's Markdown made no mailto: link of it
    form = page.locator("[data-testid=stForm]").filter(has_text="New email address")
    form.get_by_label("New email address").fill("fred.new@example.com")
    form.get_by_label("Your password").fill("not the password at all")
    form.get_by_role("button", name="Change email").click()
    page.get_by_text("That password is not right.").wait_for(timeout=20_000)
    assert form.get_by_label("New email address").input_value() == "fred.new@example.com"
    assert form.get_by_label("Your password").input_value() == ""
    form.get_by_label("Your password").fill(PASSWORD)
    form.get_by_role("button", name="Change email").click()
    page.get_by_text("We sent a confirmation link to the new address.").wait_for(timeout=20_000)
    assert [form.get_by_label(f).input_value() for f in ("New email address", "Your password")] == ["", ""]
    assert any("To: fred.new@example.com" in m for m in server.outbox())
    shot(page, "settings-email-change-sent")
    page.context.close()


def test_forged_session_cookie_shows_sign_in(server: Server, browser: object) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    host = server.url.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "finsync_session", "value": "forged" * 8, "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(server.url)
    page.get_by_text("Sign in to finsync").wait_for(timeout=30_000)
    context.close()


def test_security_headers_on_the_page(server: Server) -> None:
    import urllib.request

    with urllib.request.urlopen(server.url) as response:
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        connect = next(d.split() for d in csp.split(";") if d.split()[0] == "connect-src")
        assert [v for v in connect if v.startswith("ws")] == [
            server.url.replace("http://", "ws://")
        ]  # FINSYNC_BASE_URL's
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_forwarded_for_header_from_this_machine_does_not_name_the_client(server: Server, browser: object) -> None:
    """With no proxy configured (FINSYNC_PROXY_HOPS=0), X-Forwarded-For counts for nothing, even from a loopback peer
    (a tunnel, another local user), whom the server library underneath would otherwise have believed: a spoofed
    address must not stand in the session list and the audit log (nor escape the per-address sign-in limit)."""
    made = server.cli("users", "create", "--email", "xff@example.com", "--username", "xff", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    spoofed = {"x-forwarded-for": "192.0.2.9"}
    page.route("**/auth/session", lambda route: route.continue_(headers={**route.request.headers, **spoofed}))
    page.goto(server.url)
    page.get_by_label("Email or username").fill("xff")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome, xff").wait_for(timeout=30_000)
    context.close()
    with sqlite3.connect(server.data_dir / "finsync.db") as db:
        (user_id,) = db.execute("SELECT id FROM users WHERE username = 'xff'").fetchone()
        recorded = {ip for (ip,) in db.execute("SELECT ip FROM auth_sessions WHERE user_id = ?", (user_id,))}
        signed_in = "SELECT ip FROM audit_events WHERE user_id = ? AND event != 'registered'"  # that was the CLI's
        audited = {ip for (ip,) in db.execute(signed_in, (user_id,))}
    assert recorded and "192.0.2.9" not in recorded
    # the activity log names the same address as the session list (Streamlit hides a loopback peer from pages)
    assert audited == recorded == {"127.0.0.1"}


def test_a_bookmarked_page_opened_signed_out_signs_in_right_there_and_then_opens(
    server: Server, browser: object
) -> None:
    """A bookmark, or a reload after the session ran out: the sign-in form at that address (not Streamlit's
    "Page not found" over it), and once signed in the page that was asked for, not Home."""
    made = server.cli("users", "create", "--email", "bea@example.com", "--username", "bea", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/transactions")
    page.get_by_text("Sign in to open Transactions.").wait_for(timeout=30_000)
    assert page.get_by_text("Page not found").count() == 0
    shot(page, "auth-bookmark-signed-out")
    page.get_by_label("Email or username").fill("bea")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Transactions").wait_for(timeout=30_000)
    assert page.url == f"{server.url}/transactions"
    context.close()


# Each time stamp in a caption and how many lines the browser spread it over (Markdown splits the text into
# several nodes, at the colon of "12:46" among others: the range runs across them).
_STAMP_LINES = """() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')].flatMap(el => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT), nodes = [];
    let text = '';
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        nodes.push([node, text.length]);
        text += node.data;
    }
    const at = i => { const [node, from] = nodes.findLast(([, from]) => from <= i); return [node, i - from]; };
    const stamp = /\\d{4}-\\u2060?\\d\\d-\\u2060?\\d\\d[ \\u00a0]\\d\\d:\\d\\d[ \\u00a0][A-Z+\\d-]+/g;
    return [...text.matchAll(stamp)].map(m => {
        const range = document.createRange();
        range.setStart(...at(m.index));
        range.setEnd(...at(m.index + m[0].length - 1));
        range.setEnd(range.endContainer, range.endOffset + 1);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        return [m[0], tops.size];
    });
})"""


def test_the_sessions_list_keeps_each_date_on_one_line(server: Server, browser: object) -> None:
    """Settings → Sessions broke its dates across lines ("started 2026-12-" / "07 12:46 UTC") in its narrow
    columns, on a laptop as on a phone."""
    made = server.cli("users", "create", "--email", "gus@example.com", "--username", "gus", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    elsewhere = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(elsewhere, server, "gus", PASSWORD)  # a second session: listed with its Revoke button
    elsewhere.context.close()
    for width, height in ((1280, 900), (390, 844)):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()  # type: ignore[attr-defined]
        sign_in(page, server, "gus", PASSWORD)
        page.goto(f"{server.url}/settings")
        page.get_by_role("tab", name="Sessions").click()
        page.get_by_role("button", name="Revoke").first.wait_for(timeout=20_000)
        stamps = page.evaluate(_STAMP_LINES)
        assert len(stamps) >= 4, stamps  # started and last seen, for this session and the other ones
        assert [s for s, lines in stamps if lines != 1] == [], f"dates broken across lines at {width}px"
        shot(page, f"settings-sessions-{width}")
        page.context.close()
