"""The sign-in and account forms as a person uses them (AppTest), happy paths and errors."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

from pages.ui import session as ui_session
from services import audit, auth, sessions, totp
from services.container import Container
from services.errors import InvalidCredentials
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import (
    PASSWORD,
    code_at,
    enable_totp,
    link_token,
    make_user,
    registered,
    sign_in,
    sign_in_with_code,
)
from tests.ui.conftest import AppFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")


def submit(at: AppTest, label: str) -> AppTest:
    """Click the (form) button with this label and rerun."""
    button = next(b for b in at.button if b.label == label)
    return button.click().run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "success", "warning", "info") for e in getattr(at, kind)]
    parts += [t.value for t in at.title] + [m.value for m in at.markdown]
    return "\n".join(str(p) for p in parts)


def signed_in_as(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setattr(ui_session, "read_cookie", lambda: token)


def settings_page(app: AppFactory, monkeypatch: pytest.MonkeyPatch, token: str) -> AppTest:
    """Settings, open in the browser session whose cookie is ``token``."""
    signed_in_as(monkeypatch, token)
    at = app().run()
    at.switch_page("settings.py").run()
    assert not at.exception
    return at


def revoke_buttons(at: AppTest) -> list[Button]:
    return [b for b in at.button if b.label == "Revoke"]


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
    assert "Sign-in failed" in texts(at)
    at.text_input(key="totp_code").input(code_at(enrolment.secret, clock.now))
    at = submit(at, "Verify")
    assert at.session_state["handoff_ticket"]  # the browser now trades it for the cookie


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
    assert "Check your email: we sent a message to bob@example" in texts(at)
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
    assert taken_other_case == ([new[0][0].replace("bob@", "BOB@")], new[1])  # the address as typed, nothing more
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
    assert sessions.current_user(container, sign_in(container, "vic")).user.id == user.id  # type: ignore[union-attr]


def test_settings_change_password_and_enrol_two_factor(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    signed_in_as(monkeypatch, sign_in(container))
    at = app().run()
    at.switch_page("settings.py").run()
    assert not at.exception
    at.text_input(key="cp_current").input("not my password at all")
    at.text_input(key="cp_new").input("marble falcon orchard 5521 quilt")
    at = submit(at, "Change password")
    assert at.error and "password is not right" in at.error[0].value
    (activity,) = [d.value for d in at.dataframe if "What" in d.value.columns]  # Settings → Activity, in words
    assert set(activity["What"]) == {"Password change refused (wrong password)", "Signed in"}
    at = submit(at, "Set up two-factor sign-in")
    (shown,) = [c.value for c in at.code if len(c.value) == 32]  # the secret, for typing in instead of scanning
    state = {k: repr(at.session_state[k]) for k in at.session_state}
    assert "totp_confirm_code" in state and not [k for k, v in state.items() if shown in v]  # on the account only
    secret = shown
    at.text_input(key="totp_confirm_code").input("123")
    at.text_input(key="totp_confirm_password").input(PASSWORD)
    at = submit(at, "Turn on")
    assert at.error
    at.text_input(key="totp_confirm_code").input(code_at(secret, clock.now))
    at.text_input(key="totp_confirm_password").input("not my password at all")  # a stolen session is not enough
    at = submit(at, "Turn on")
    assert at.error and "Two-factor sign-in is on." not in texts(at)
    at.text_input(key="totp_confirm_password").input(PASSWORD)
    at = submit(at, "Turn on")
    assert "Two-factor sign-in is on." in texts(at)
    assert len([c for c in at.code if c.value.count("\n") == 9]) == 1  # ten recovery codes, shown once
    assert not [c for c in at.code if c.value == secret]  # the QR code and its secret are gone
    at = submit(at, "Change password")  # another click on the page does not lose the codes
    assert len([c for c in at.code if c.value.count("\n") == 9]) == 1
    at = submit(at, "I have saved them")
    assert not [c for c in at.code if c.value.count("\n") == 9]


def test_what_a_page_kept_for_one_user_is_gone_when_their_session_ends(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery codes waiting to be saved are not shown after the session ends, nor to the next account."""
    make_user(container, "alice")
    make_user(container, "bob")
    token = sign_in(container, "alice")
    signed_in_as(monkeypatch, token)
    at = app().run()
    at.switch_page("settings.py").run()
    at = submit(at, "Set up two-factor sign-in")
    (secret,) = [c.value for c in at.code if len(c.value) == 32]
    at.text_input(key="totp_confirm_code").input(code_at(secret, clock.now))
    at.text_input(key="totp_confirm_password").input(PASSWORD)
    at = submit(at, "Turn on")
    (codes,) = [c.value for c in at.code if c.value.count("\n") == 9]

    sessions.sign_out(container, token)  # ended elsewhere ("sign out everywhere", idle timeout, an admin)
    at.run()
    signed_in_as(monkeypatch, sign_in(container, "bob"))  # the next person at this browser tab
    at.run()
    at.switch_page("settings.py").run()
    assert not at.exception
    shown = [c.value for c in at.code] + [repr(at.session_state[k]) for k in at.session_state]
    assert not [v for v in shown if any(code in v for code in codes.split("\n"))]


def test_admin_page_only_for_admins(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in(container, "alice"))
    at = app().run()
    with pytest.raises(ValueError):  # the page is not even registered for a plain user
        at.switch_page("admin.py").run()
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert set(shown["Username"]) == {"alice", "root"}
    assert not any("password" in str(col) or "totp_secret" in str(col) for col in shown.columns)
    log = at.dataframe[1].value  # the audit log names accounts, never shows raw ids or bytes
    assert {"alice", "root"} <= set(log["Account"]) and not log.astype(str).map(lambda v: "{" in v).any().any()
    assert "No bank connections waiting to be revoked." in [i.value for i in at.info]  # the revocations tab


def test_admin_messages_show_a_username_as_written(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "__loud__")  # usernames may hold underscores: Markdown's bold
    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    at.selectbox(key="admin_user").select("__loud__ <__loud__@example.com>").run()
    at = submit(at, "Disable")
    assert not at.exception
    assert [s.value for s in at.success] == [r"\_\_loud\_\_ is disabled and signed out everywhere."]


NEEDS_TOTP = "The admin page needs two-factor sign-in. Turn it on in Settings → Two-factor."


def _admin_page_refused(at: AppTest) -> bool:
    """Only the two-factor message and a link to Settings: no table, tab or button of the admin page."""
    links = [(link.value, link.proto.page) for link in at.page_link]
    return (
        [w.value for w in at.warning] == [NEEDS_TOTP]
        and len(links) == 1
        and links[0][1] == "settings"
        and not at.dataframe
        and not at.tabs
        and not at.title
        and not at.selectbox
        and not [b for b in at.main.button]
    )


def test_admin_page_needs_two_factor_on_every_rerun(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    root = make_user(container, "root", role="admin")  # as `users create --admin` makes it
    token = sign_in(container, "root")
    signed_in_as(monkeypatch, token)
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception and _admin_page_refused(at)

    secret = enable_totp(container, root.id, current_token=token)  # in Settings, in this same session
    at.run()
    assert not at.exception and set(at.dataframe[0].value["Username"]) == {"alice", "root"}

    clock.advance(seconds=30)
    totp.disable_totp(container, root.id, password=PASSWORD, code=code_at(secret, clock()))
    at.run()  # the open page notices at its next rerun, not at the next sign-in
    assert not at.exception and _admin_page_refused(at)


def test_every_signed_in_page_renders(app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(container, "root", role="admin", verified=False)
    signed_in_as(monkeypatch, sign_in(container, "root"))
    for page in ("home.py", "settings.py", "admin.py"):
        at = app().run()
        at.switch_page(page).run()
        assert not at.exception, page


def test_settings_revoke_ends_another_session_and_a_failed_revoke_says_why(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container, "alice")
    here, _, _ = sign_in(container), sign_in(container), sign_in(container)
    at = settings_page(app, monkeypatch, here)
    assert len(revoke_buttons(at)) == 2  # not for the session this page runs in
    at = revoke_buttons(at)[0].click().run()
    assert not at.exception and not at.error and len(revoke_buttons(at)) == 1
    assert len(sessions.list_sessions(container, alice.id, here)) == 2

    real = sessions.revoke_session

    def ended_in_another_tab_first(c: Container, user_id: object, session_id: object, **kw: str) -> None:
        real(c, user_id, session_id, **kw)  # type: ignore[arg-type]
        real(c, user_id, session_id, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sessions, "revoke_session", ended_in_another_tab_first)
    at = revoke_buttons(at)[0].click().run()  # the error outlives the rerun that redraws the list
    (shown,) = [e.value for e in at.error]
    assert "That session does not exist or has already ended" in shown and not revoke_buttons(at)
    at.run()
    assert not at.error  # said once


def test_settings_change_email_refuses_a_wrong_password_and_answers_a_taken_address_as_a_free_one(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    make_user(container, "bob")
    at = settings_page(app, monkeypatch, sign_in(container))
    at.text_input(key="ec_email").input("new@example.com")
    at.text_input(key="ec_password").input("not my password at all")
    at = submit(at, "Change email")
    assert [e.value for e in at.error] == ["That password is not right."] and not at.success and not mailer.sent
    answers = []
    for address in ("new@example.com", "BOB@example.com"):
        at.text_input(key="ec_email").input(address)
        at.text_input(key="ec_password").input(PASSWORD)
        at = submit(at, "Change email")
        assert not at.exception and not at.error
        answers.append([s.value for s in at.success])
    assert (
        answers[0]
        == answers[1]
        == ["We sent a confirmation link to the new address. Your email changes when you open it."]
    )
    assert [m["To"] for m in mailer.sent] == [
        "new@example.com",
        "alice@example.com",
        "bob@example.com",
        "alice@example.com",
    ]
    assert "Your email: **alice@example\\.com**" in texts(at)  # nothing changes until the new address confirms


def test_settings_delete_account_needs_the_box_and_the_password_then_signs_out(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container, "alice")
    at = settings_page(app, monkeypatch, sign_in(container))
    at.text_input(key="del_password").input(PASSWORD)
    at = submit(at, "Delete my account")
    assert [e.value for e in at.error] == ["Tick the box to confirm."]
    at.text_input(key="del_password").input("not my password at all")
    at.checkbox(key="del_sure").check()
    at = submit(at, "Delete my account")
    assert [e.value for e in at.error] == ["That password is not right."]
    assert registered(container, "alice@example.com").id == alice.id
    at.text_input(key="del_password").input(PASSWORD)
    at.checkbox(key="del_sure").check()
    at = submit(at, "Delete my account")
    assert not at.exception and "Sign in to finsync" in texts(at)  # the cookie is cleared on the way out
    assert "account_deleted" in [e.event for e in audit.list_events(container, alice.id)]
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice", password=PASSWORD)  # the account is gone


def test_settings_turn_two_factor_off_needs_a_right_code(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container, "alice")
    secret = enable_totp(container, alice.id)
    at = settings_page(app, monkeypatch, sign_in_with_code(container, clock, "alice", secret))
    assert "Two-factor sign-in is on." in texts(at)
    clock.advance(seconds=30)
    at.text_input(key="totp_off_password").input(PASSWORD)
    at.text_input(key="totp_off_code").input("000000")
    at = submit(at, "Turn two-factor off")
    assert at.error and "code is not right" in at.error[0].value and "Two-factor sign-in is on." in texts(at)
    at.text_input(key="totp_off_password").input(PASSWORD)
    at.text_input(key="totp_off_code").input(code_at(secret, clock()))
    at = submit(at, "Turn two-factor off")
    assert not at.exception and not at.error and "Two-factor sign-in is on." not in texts(at)
    assert [b for b in at.button if b.label == "Set up two-factor sign-in"]
    assert registered(container, "alice@example.com").totp_enabled is False
