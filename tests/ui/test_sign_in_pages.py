"""The signed-out pages as a person uses them (AppTest): sign in (with two-factor, and a refused hand-off), register,
forgot password, and the reset and verify links; happy paths and errors."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pages.ui.text import md
from services import auth, sessions
from services.container import Container
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import PASSWORD, code_at, link_token, make_user, registered, sign_in
from tests.ui.account_support import signed_in_as, submit, texts
from tests.ui.conftest import AppFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")


def test_sign_in_wrong_password_is_generic_then_right_password_signs_in(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    signed_in_as(monkeypatch, None)
    at = app().run()
    assert "Sign in to finsync" in texts(at)
    at.text_input(key="sign_in_login").input("alice")
    at.text_input(key="sign_in_password").input("wrong wrong wrong wrong")
    at = submit(at, "Sign in")
    assert "Sign-in failed: check your details and try again." in texts(at)
    # the refused password is gone from the screen, the login stays to correct; said once, not on the next run
    assert (at.text_input(key="sign_in_login").value, at.text_input(key="sign_in_password").value) == ("alice", "")
    assert "Sign-in failed: check your details and try again." not in texts(at.run())
    at.text_input(key="sign_in_login").input("nobody-here")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    assert "Sign-in failed: check your details and try again." in texts(at)
    at.text_input(key="sign_in_login").input("ALICE@example.com")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    assert not at.exception
    assert at.session_state["handoff_ticket"]  # the browser now trades it for the cookie
    token = auth.redeem_ticket(container, ticket=at.session_state["handoff_ticket"])  # what the route does
    signed_in_as(monkeypatch, token)
    at = app().run()
    assert "Welcome, alice" in texts(at)


EXPIRED_SAID = "Your sign-in expired before it could finish. Please sign in again."


def test_a_refused_hand_off_comes_back_to_sign_in_with_a_message(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser is told where to go when the ticket route refuses; the sign-in page says why, once."""
    from pages.ui import browser

    asked: list[dict[str, str]] = []
    monkeypatch.setattr(browser, "_post_and_reload", lambda **kw: asked.append(kw["data"]))  # AppTest runs no JS
    make_user(container, "alice")
    signed_in_as(monkeypatch, None)
    at = app().run()
    assert EXPIRED_SAID not in texts(at)
    at.text_input(key="sign_in_login").input("alice")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    (handoff,) = asked
    assert handoff["url"] == "/auth/session" and handoff["body"] == at.session_state["handoff_ticket"]
    assert (handoff["next"], handoff["failed"]) == ("/", "/?signin=expired")

    at = app()  # where the browser lands after a 401 (tests/e2e/test_auth_browser.py follows it for real)
    at.query_params["signin"] = "expired"
    at.run()
    assert not at.exception and [w.value for w in at.warning] == [EXPIRED_SAID]
    assert "signin" not in at.query_params and at.text_input(key="sign_in_login")  # the form, ready again
    at.run()
    assert EXPIRED_SAID not in texts(at)


BUSY_SAID = "Too many failed sign-ins from your network. Try again in 5 minutes."


def test_a_hand_off_refused_for_too_many_tries_says_so_not_that_the_sign_in_expired(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ticket route's 429 (too many dead tickets from this address) brought the person back to "Your sign-in
    expired", and signing in again only did the same: the browser is told a page of its own for it, which says why
    and for how long (the Retry-After the browser adds, in whole minutes; anything else in its place says "later")."""
    from pages.ui import browser

    asked: list[dict[str, str]] = []
    monkeypatch.setattr(browser, "_post_and_reload", lambda **kw: asked.append(kw["data"]))  # AppTest runs no JS
    make_user(container, "alice")
    signed_in_as(monkeypatch, None)
    at = app().run()
    at.text_input(key="sign_in_login").input("alice")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    (handoff,) = asked
    assert (handoff["failed"], handoff["busy"]) == ("/?signin=expired", "/?signin=busy")

    for wait, said in (("300", BUSY_SAID), ("61", BUSY_SAID.replace("5 minutes", "2 minutes")),
                       ("<b>9</b>", BUSY_SAID.replace("in 5 minutes", "later")), ("9" * 40, BUSY_SAID.replace(
                           "in 5 minutes", "later"))):  # fmt: skip
        at = app()  # where the browser lands after a 429 (tests/e2e/test_auth_browser.py follows it for real)
        at.query_params.update({"signin": "busy", "wait": wait})
        at.run()
        assert not at.exception and [w.value for w in at.warning] == [said], wait
        assert "signin" not in at.query_params and "wait" not in at.query_params and at.text_input(key="sign_in_login")


def test_sign_in_with_two_factor_asks_for_the_code(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import totp

    user = make_user(container, "tess")
    enrolment = totp.start_totp_enrolment(container, user.id)
    totp.confirm_totp(container, user.id, code=code_at(enrolment.secret, clock.now), password=PASSWORD)
    clock.advance(seconds=90)
    signed_in_as(monkeypatch, None)
    at = app().run()
    at.text_input(key="sign_in_login").input("tess")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    assert at.session_state["sign_in_stage"] == "totp"
    at.text_input(key="totp_code").input("000000")
    at = submit(at, "Verify")
    # about the code, the one thing on this step (it said "check your details", as for a wrong password)
    assert auth.CODE_REFUSED in texts(at) and at.text_input(key="totp_code").value == ""
    at.text_input(key="totp_code").input(code_at(enrolment.secret, clock.now))
    at = submit(at, "Verify")
    assert at.session_state["handoff_ticket"]  # the browser now trades it for the cookie


def test_a_code_step_that_ran_out_sends_the_person_back_to_the_password(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five minutes on the code step (the phone was elsewhere): the right code then cannot sign in, and the page says
    so and shows the password form again, instead of "Sign-in failed" for every code typed into a dead step."""
    from services import totp

    user = make_user(container, "tom")
    enrolment = totp.start_totp_enrolment(container, user.id)
    totp.confirm_totp(container, user.id, code=code_at(enrolment.secret, clock.now), password=PASSWORD)
    signed_in_as(monkeypatch, None)
    at = app().run()
    at.text_input(key="sign_in_login").input("tom")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at = submit(at, "Sign in")
    clock.advance(minutes=5)
    at.text_input(key="totp_code").input(code_at(enrolment.secret, clock.now))
    at = submit(at, "Verify")
    assert [e.value for e in at.error] == [
        "This sign-in has ended: it took more than 5 minutes or had too many wrong codes. Please sign in again."
    ]
    assert at.session_state["sign_in_stage"] == "password" and not at.text_input(key="sign_in_password").value
    at.text_input(key="sign_in_password").input(PASSWORD)  # and again, in time this once
    at = submit(at, "Sign in")
    at.text_input(key="totp_code").input(code_at(enrolment.secret, clock.now, 1))
    at = submit(at, "Verify")
    assert not at.error and at.session_state["handoff_ticket"]


def test_register_errors_then_success_sends_verification(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in_as(monkeypatch, None)
    at = app().run()
    at.switch_page("register.py").run()
    fields = {"register_email": "bob@example.com", "register_username": "bob", "register_password": "short"}
    for key, value in fields.items():
        at.text_input(key=key).input(value)
    at.text_input(key="register_repeat").input("short")
    at = submit(at, "Create account")
    assert "at least 15 characters" in texts(at)
    at.text_input(key="register_password").input("passwordpassword")
    at.text_input(key="register_repeat").input("passwordpassword")
    at = submit(at, "Create account")
    assert "too weak" in texts(at)
    at.text_input(key="register_email").input("<script>alert(1)</script>@example.com")
    at.text_input(key="register_password").input(PASSWORD)
    at.text_input(key="register_repeat").input(PASSWORD)
    at = submit(at, "Create account")
    assert "not valid" in texts(at) and not mailer.sent
    at.text_input(key="register_email").input("bob@example.com")
    at = submit(at, "Create account")
    assert f"Check your email: we sent a message to {md('bob@example.com')}." in texts(at)
    assert [m["To"] for m in mailer.sent] == ["bob@example.com"]


def _register(app: AppFactory, email: str, username: str) -> AppTest:
    at = app().run()
    at.switch_page("register.py").run()
    for key, value in (("register_email", email), ("register_username", username), ("register_password", PASSWORD)):
        at.text_input(key=key).input(value)
    at.text_input(key="register_repeat").input(PASSWORD)
    return submit(at, "Create account")


def test_register_answers_the_same_for_a_taken_email(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in_as(monkeypatch, None)
    answers = []
    for email, username in (("bob@example.com", "bob"), ("bob@example.com", "bobby"), ("BOB@Example.COM", "robert")):
        at = _register(app, email, username)
        assert not at.exception and not at.error
        answers.append(([m.value for m in at.success], [link.value for link in at.page_link]))
    new, taken, taken_other_case = answers
    assert new == taken and new[0] and new[1] == ["Sign in"]
    as_typed = new[0][0].replace(md("bob@"), md("BOB@"))
    assert taken_other_case == ([as_typed], new[1]) and as_typed != new[0][0]  # the address as typed, nothing more
    subjects = [(str(m["To"]), str(m["Subject"])) for m in mailer.sent]
    assert subjects == [
        ("bob@example.com", "Verify your email for finsync"),
        ("bob@example.com", "finsync: someone tried to register with your email address"),
    ]  # the third attempt, within the hour, mails nobody
    assert registered(container, "bob@example.com").username == "bob"


def test_register_says_when_a_username_is_taken(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    signed_in_as(monkeypatch, None)
    at = _register(app, "someone.new@example.com", "ALICE")
    assert [e.value for e in at.error] == ["That username is taken; choose another."]
    assert not at.success and mailer.sent == []


def test_forgot_password_answers_the_same_for_unknown_accounts(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    signed_in_as(monkeypatch, None)
    answers = []
    for address in ("alice@example.com", "ghost@example.com"):
        at = app().run()
        at.switch_page("forgot_password.py").run()
        at.text_input(key="forgot_email").input(address)
        at = submit(at, "Send me a reset link")
        answers.append([s.value for s in at.success])
    assert answers[0] == answers[1] and answers[0]
    assert [m["To"] for m in mailer.sent] == ["alice@example.com"]


def test_reset_link_sets_a_new_password_once(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    auth.request_password_reset(container, email="alice@example.com")
    token = link_token(mailer, "reset")
    signed_in_as(monkeypatch, None)
    new = "marble falcon orchard 5521 quilt"
    at = app()
    at.query_params["reset"] = token
    at.run()
    at.text_input(key="reset_password").input(new)
    at.text_input(key="reset_repeat").input(new)
    at = submit(at, "Set new password")
    assert "every session was signed out" in texts(at)
    assert not [t for t in at.text_input if t.key in ("reset_password", "reset_repeat")]  # the form is gone
    assert sign_in(container, "alice", new)
    for used in (token, "forged-token"):  # a used or forged link says so at once, with no form to fill in vain
        at = app()
        at.query_params["reset"] = used
        at.run()
        assert "invalid, already used or expired" in texts(at)
        assert not [t for t in at.text_input if t.key == "reset_password"]


@pytest.mark.parametrize("browser_user", ["alice", "bob"])
def test_a_reset_link_opened_in_a_browser_still_signed_in_sets_the_password(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch, browser_user: str
) -> None:
    """Someone who forgot the password their browser is still signed in with (Settings asks for the current one)
    opens the emailed link there: it offers the form (it showed Home and dropped the link), and once the password
    is set this browser is signed out too, also when it was signed in to another account, with the sign-in page
    saying what happened."""
    from pages.ui import browser

    asked: list[dict[str, str]] = []
    monkeypatch.setattr(browser, "_post_and_reload", lambda **kw: asked.append(kw["data"]))  # AppTest runs no JS
    make_user(container, "alice")
    make_user(container, "bob")
    signed_in_as(monkeypatch, sign_in(container, browser_user))
    at = app()
    at.query_params["reset"] = "forged-token"
    at.run()  # a dead link says so, and where a signed-in person changes the password instead
    assert not at.exception and "invalid, already used or expired" in texts(at)
    assert [link.label for link in at.get("page_link")] == ["Change your password in Settings"]
    auth.request_password_reset(container, email="alice@example.com")
    new = "marble falcon orchard 5521 quilt"
    at = app()
    at.query_params["reset"] = link_token(mailer, "reset")
    at.run()
    assert not at.exception and f"You are signed in as {browser_user}" in texts(at)
    at.text_input(key="reset_password").input(new)
    at.text_input(key="reset_repeat").input(new)
    at = submit(at, "Set new password")
    assert not at.exception and "every session was signed out" in texts(at)
    assert "Sign in to finsync" in texts(at) and not [t for t in at.text_input if t.key == "reset_password"]
    assert [a["url"] for a in asked] == ["/auth/logout"]  # the browser drops its cookie
    assert sign_in(container, "alice", new)


def test_an_email_change_link_speaks_of_the_change_and_says_the_new_address(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link mailed to a new address confirms a change, not a sign-up: its mail tells a stranger to ignore it,
    and its page says the account's address is now the new one (it said "you can link your banks")."""
    alice = make_user(container)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="new@example.com")
    mail = next(m for m in mailer.sent if m["To"] == "new@example.com")
    body = str(mail.get_content())
    assert "&change=1" in body and "did not ask to use this address" in body and "reset your password" not in body
    signed_in_as(monkeypatch, sign_in(container, "alice"))
    at = app()
    at.query_params["verify"] = link_token(mailer, "verify", index=mailer.sent.index(mail))
    at.query_params["change"] = "1"
    at.run()
    assert "your finsync account's address changes to it" in texts(at) and "link your banks" not in texts(at)
    at = submit(at, "Confirm my email address")
    assert not at.error and f"your account's email address is now {md('new@example.com')}" in texts(at)
    assert [link.label for link in at.get("page_link")] == ["Back to Settings"]


def test_a_dead_verify_link_says_where_a_new_one_comes_from(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired or used verification link left only "invalid or has expired" on the page: nothing said how to get
    a new one (signed out: sign in; signed in and still unverified: Home's "Send the link again")."""
    make_user(container, "vic", verified=False)
    for token, way, words in ((None, "Sign in", "Sign in to have a new link sent."),
                              (sign_in(container, "vic"), "Send yourself a new link from Home", "")):  # fmt: skip
        signed_in_as(monkeypatch, token)
        at = app()
        at.query_params["verify"] = "expired-token"
        at.run()
        at = submit(at, "Confirm my email address")
        assert not at.exception and "invalid or has expired" in texts(at) and words in texts(at)
        assert way in [link.label for link in at.get("page_link")]
    at = app().run()  # Home, where it points, offers the new link
    assert [b for b in at.button if b.label == "Send the link again"]


def test_verify_link_and_forged_link(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.register(container, email="vic@example.com", username="vic", password=PASSWORD)
    user = registered(container, "vic@example.com")
    signed_in_as(monkeypatch, None)
    for token, expected in (("forged-token", "invalid or has expired"), (link_token(mailer, "verify"), "is verified")):
        at = app()
        at.query_params["verify"] = token
        at.run()
        at = submit(at, "Confirm my email address")
        assert expected in texts(at)
        confirm = [b for b in at.button if b.label == "Confirm my email address"]
        assert bool(confirm) == (expected != "is verified")  # verified: nothing left to confirm
        assert ("Confirm that this email address is yours" in texts(at)) == bool(confirm)  # nor words about it
    assert [link.label for link in at.get("page_link")] == ["Sign in"]  # the way on, signed out
    token = sign_in(container, "vic")
    assert sessions.current_user(container, token).user.id == user.id  # type: ignore[union-attr]
    signed_in_as(monkeypatch, token)  # the same link again, signed in and verified: said plainly, not an error
    at = app()
    at.query_params["verify"] = link_token(mailer, "verify")
    at.run()
    at = submit(at, "Confirm my email address")
    assert not at.error and f"Your address, {md('vic@example.com')}, is verified." in next(i.value for i in at.info)

    at = app()  # the link cut off before its token: it says where the link is, with no button to press in vain
    at.query_params["verify"] = ""
    at.run()
    assert not at.exception and not [b for b in at.button if b.label == "Confirm my email address"]
    assert "Open the link in the email finsync sent you" in texts(at)


def test_an_email_change_link_to_an_address_taken_meanwhile_says_so_signed_in(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone registered the new address between the request and the click: signed in and verified, the page said
    "This link was already used or has expired. Your address is verified", as if the change had gone through or the
    link were merely old. It says why the address did not change."""
    alice = make_user(container)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="new@example.com")
    mail = next(m for m in mailer.sent if m["To"] == "new@example.com")
    token = link_token(mailer, "verify", index=mailer.sent.index(mail))
    auth.register(container, email="new@example.com", username="newcomer", password=PASSWORD)
    signed_in_as(monkeypatch, sign_in(container, "alice"))
    at = app()
    at.query_params["verify"] = token
    at.query_params["change"] = "1"
    at.run()
    at = submit(at, "Confirm my email address")
    assert not at.exception and [e.value for e in at.error] == ["That email address or username is already registered."]
    assert "already used or has expired" not in texts(at)
    assert [link.label for link in at.get("page_link")] == ["Ask for the change again in Settings"]
