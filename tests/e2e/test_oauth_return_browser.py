"""Coming back from a bank's OAuth sign-in with the session gone: sign in, and Link opens where it left off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "harbor quill meadow 5823 slate"
STATE = "e2e-oauth-state-7c1d"
# What Link is handed, recorded as the page creates it (the demo bank's Link stand-in assigns window.Plaid).
RECORD_LINK_CONFIG = """
(() => {
  let plaid;
  Object.defineProperty(window, "Plaid", {
    configurable: true,
    get: () => plaid,
    set: (real) => {
      plaid = { ...real, create: (config) => { window.__linkRedirect = config.receivedRedirectUri || null;
                                              return real.create(config); } };
    },
  });
})();
"""


@pytest.fixture(scope="module")
def accounts_redirect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PLAID_REDIRECT_URI is the Accounts page (its host is the operator's; only its path matters here)."""
    yield from start_server(tmp_path_factory, PLAID_REDIRECT_URI="https://finsync.example.com/accounts")


@pytest.mark.parametrize(
    ("path", "detour"), [("/", False), ("/accounts", False), ("/accounts", True)], ids=["root", "accounts", "detour"]
)
def test_sign_in_after_the_bank_resumes_link(
    server: Server, accounts_redirect: Server, browser: object, path: str, detour: bool
) -> None:
    """``detour``: the visitor first opens "Forgot your password?" and comes back to Sign in (the query is gone)."""
    app = server if path == "/" else accounts_redirect
    login = {"/": "oli", "/accounts": "ola"}[path] + ("d" if detour else "")
    made = app.cli("users", "create", "--email", f"{login}@example.com", "--username", login, stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    before = browser.new_context()  # type: ignore[attr-defined]
    page = before.new_page()
    sign_in(page, app, login, PASSWORD)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("button", name="Link a bank").click()
    page.get_by_role("button", name="Choose your bank").wait_for(timeout=20_000)  # Link's session is stored
    before.close()  # off to the bank; the session cookie does not come back

    context = browser.new_context()  # type: ignore[attr-defined]
    context.add_init_script(RECORD_LINK_CONFIG)
    page = context.new_page()
    returned = f"{app.url}{path}?oauth_state_id={STATE}"
    page.goto(returned)
    page.get_by_text("Sign in to finish linking your bank.").wait_for(timeout=30_000)
    assert page.url == returned and page.get_by_text("Page not found").count() == 0  # signing in right there
    if detour:
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_role("heading", name="Forgot your password").wait_for(timeout=20_000)
        assert "oauth_state_id" not in page.url
        page.get_by_role("link", name="Sign in").first.click()
        page.get_by_text("Sign in to finish linking your bank.").wait_for(timeout=20_000)
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("demo-link-dialog").wait_for(timeout=30_000)  # opened by itself: no click on the bank
    assert page.evaluate("window.__linkRedirect") == returned
    shot(page, f"oauth-return-signed-out-{login}")
    page.locator('[data-institution-id="ins_demo_2"]').click()
    page.get_by_label("Username").fill("user_good")
    page.get_by_label("Password", exact=True).last.fill("pass_good")
    page.get_by_test_id("demo-link-submit").click()
    page.get_by_test_id("demo-link-accounts").wait_for(timeout=20_000)
    page.get_by_test_id("demo-link-continue").click()
    page.get_by_text("Linked Maple Credit Union").wait_for(timeout=30_000)
    context.close()
