"""The page's Content-Security-Policy in Chromium: the app works under it, and a socket elsewhere is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, csp_violations, free_port, sign_in

pytestmark = pytest.mark.e2e
PASSWORD = "lantern meadow quarry 5532 pebble"


@pytest.fixture
def other_socket_server() -> Iterator[str]:
    """A WebSocket server on another loopback port that accepts anyone: only the page's CSP can keep a script out."""
    from websockets.sync.server import ServerConnection, serve

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    port = free_port()
    with serve(echo, "127.0.0.1", port) as listener:
        thread = threading.Thread(target=listener.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{port}/"
        listener.shutdown()
    thread.join(timeout=5)


OPEN_SOCKET = """url => new Promise(resolve => {
    let ws;
    try { ws = new WebSocket(url); } catch (error) { resolve("refused: " + error.name); return; }
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
    setTimeout(() => resolve("timed out"), 5000);
})"""


def test_sign_in_raises_no_csp_violation_and_a_script_cannot_reach_another_socket(
    server: Server, browser: object, other_socket_server: str
) -> None:
    made = server.cli("users", "create", "--email", "erin@example.com", "--username", "erin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    violations = csp_violations(page)
    sockets: list[object] = []
    page.on("websocket", lambda ws: sockets.append(ws))  # noqa: PLW0108 (playwright tags its handler: a bound builtin cannot take the tag)
    sign_in(page, server, "erin", PASSWORD)
    page.reload()
    page.get_by_text("Welcome, erin").wait_for(timeout=30_000)  # the app's own socket carried the rerun
    assert violations == []
    own = server.url.replace("http://", "ws://") + "/_stcore/stream"
    assert sockets and all(ws.url == own for ws in sockets)  # type: ignore[attr-defined]
    assert not sockets[-1].is_closed()  # type: ignore[attr-defined]

    # What injected script would try: a socket to a server that would take it. The policy refuses it.
    assert page.evaluate(OPEN_SOCKET, other_socket_server).startswith("refused")
    page.wait_for_timeout(300)  # the console report follows the error event
    assert any("connect-src" in v and other_socket_server.rstrip("/") in v for v in violations), violations


PAGES = ("Accounts", "Transactions", "Sync history", "Settings")  # the admin page is test_admin_browser's


def test_every_page_with_a_synced_bank_renders_under_the_policy(server: Server, browser: object) -> None:
    """Scripts are allowed by origin and by hash only (no 'unsafe-inline'): each page, its grids, tabs and
    components included, must still work, with nothing refused."""
    made = server.cli("users", "create", "--email", "pat@example.com", "--username", "pat", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    linked = server.cli("plaid", "link-sandbox", "--email", "pat@example.com", "--institution", "ins_demo_2")
    assert linked.returncode == 0, linked.stderr
    synced = server.cli("sync", "--email", "pat@example.com")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    violations = csp_violations(page)
    sign_in(page, server, "pat", PASSWORD)
    seen = []
    for title in PAGES:
        page.get_by_role("link", name=title).click()
        page.get_by_role("heading", name=title).wait_for(timeout=30_000)
        if title == "Transactions":
            page.get_by_test_id("stDataFrame").first.wait_for(timeout=30_000)  # the ledger grid
        if title == "Settings":
            for tab in page.get_by_role("tab").all():
                tab.click()
                page.wait_for_timeout(300)
            page.get_by_role("tab", name="Two-factor").click()  # the QR code is an SVG image: img-src must allow it
            page.get_by_role("button", name="Set up two-factor sign-in").click()
            qr = page.get_by_role("img", name="QR code to scan with your authenticator app")
            qr.wait_for(timeout=20_000)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
        page.wait_for_timeout(1000)  # grids and components finish drawing
        assert page.get_by_test_id("stException").count() == 0, title
        seen.append(title)
    assert seen == list(PAGES) and violations == []
    page.context.close()
