"""Settings as a signed-in person uses it (AppTest): password, two-factor on and off, sessions, email change and
account deletion; happy paths and errors, and nothing kept for the next person once a session ends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

from pages.ui.text import md
from services import audit, auth, sessions, totp
from services.container import Container
from services.errors import InvalidCredentials, TokenInvalid
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
from tests.ui.account_support import signed_in_as, submit, texts
from tests.ui.conftest import AppFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")


def settings_page(app: AppFactory, monkeypatch: pytest.MonkeyPatch, token: str) -> AppTest:
    """Settings, open in the browser session whose cookie is ``token``."""
    signed_in_as(monkeypatch, token)
    at = app().run()
    at.switch_page("settings.py").run()
    assert not at.exception
    return at


def revoke_buttons(at: AppTest) -> list[Button]:
    return [b for b in at.button if b.label == "Revoke"]


def test_settings_change_password_and_enrol_two_factor(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    signed_in_as(monkeypatch, sign_in(container))
    at = app().run()
    at.switch_page("settings.py").run()
    assert not at.exception
    at.text_input(key="cp_current").input(PASSWORD)
    at.text_input(key="cp_password").input("marble falcon orchard 5521 quilt")
    at.text_input(key="cp_repeat").input("marble falcon orchard 5521 quilf")  # a typo in the repetition
    at = submit(at, "Change password")
    assert [e.value for e in at.error] == ["The two passwords differ."]
    assert auth.begin_sign_in(container, login="alice", password=PASSWORD).kind == "ticket"  # unchanged
    at.text_input(key="cp_current").input("not my password at all")
    at.text_input(key="cp_password").input("marble falcon orchard 5521 quilt")
    at.text_input(key="cp_repeat").input("marble falcon orchard 5521 quilt")
    at = submit(at, "Change password")
    assert at.error and "password is not right" in at.error[0].value
    (activity,) = [d.value for d in at.dataframe if "What" in d.value.columns]  # Settings → Activity, in words
    assert set(activity["What"]) == {"Password change refused (wrong password)", "Signed in"}
    assert set(activity[activity["What"] == "Signed in"]["Detail"]) == {"with the password"}  # not a code word
    at = submit(at, "Set up two-factor sign-in")
    (shown,) = [c.value for c in at.code if re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", c.value)]  # to type in
    shown = shown.replace(" ", "")
    assert "Start again with a new code" in [b.label for b in at.button]  # pressing it again starts over: says so
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
    elsewhere = sign_in(container)  # her laptop, signed in with the password alone
    at = submit(at, "Turn on")
    assert "Two-factor sign-in is on." in texts(at)
    assert sessions.current_user(container, elsewhere) is None  # ended, and the page says so
    assert "Your other sessions were signed out: sign in there again, now with a code." in [i.value for i in at.info]
    assert len([c for c in at.code if c.value.count("\n") == 9]) == 1  # ten recovery codes, shown once
    assert not [c for c in at.code if c.value.replace(" ", "") == secret]  # the QR code and its secret are gone
    at = submit(at, "Change password")  # another click on the page does not lose the codes
    assert len([c for c in at.code if c.value.count("\n") == 9]) == 1
    at = submit(at, "I have saved them")
    assert not [c for c in at.code if c.value.count("\n") == 9] and not at.info


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
    (secret,) = [c.value.replace(" ", "") for c in at.code if len(c.value) == 39]
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


def test_activity_says_an_export_from_the_command_line_was_made_on_the_server(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m services.cli export transactions` read as "Transactions downloaded, From: unknown": someone
    unknown with the person's ledger. It says where it was made; a download from the page keeps its address."""
    from services import export

    alice = make_user(container, "alice")
    export.export_csv(container, alice.id, tmp_path / "tx.csv")  # what the command line's export runs
    export.export_bytes(container, alice.id, password=PASSWORD, ip="198.51.100.9")  # Transactions → Download
    at = settings_page(app, monkeypatch, sign_in(container))
    (activity,) = [d.value for d in at.dataframe if "What" in d.value.columns]
    exports = activity[activity["What"] == "Transactions downloaded"]
    assert sorted(zip(exports["From"], exports["Detail"], strict=True)) == [
        ("198.51.100.9", "0 transactions"),
        ("the server's command line", "0 transactions, from the server's command line"),
    ]
    assert "unknown" not in set(activity["From"])


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


def test_sign_out_all_other_sessions_leaves_only_this_one_listed(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container, "alice")
    here, _, _ = sign_in(container), sign_in(container), sign_in(container)
    at = settings_page(app, monkeypatch, here)
    at = at.button(key="revoke_others").click().run()
    assert not at.exception and [m.value.replace("\\", "") for m in at.success] == ["Signed out 2 other sessions."]
    assert not revoke_buttons(at) and not [b for b in at.button if b.key == "revoke_others"]  # the list is current
    assert [s.current for s in sessions.list_sessions(container, alice.id, here)] == [True]


def test_settings_change_email_refuses_a_wrong_password_and_answers_a_taken_address_as_a_free_one(
    app: AppFactory, container: Container, clock: FakeClock, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    make_user(container, "bob")
    at = settings_page(app, monkeypatch, sign_in(container))
    at.text_input(key="ec_email").input("new@example.com")
    at.text_input(key="ec_password").input("not my password at all")
    at = submit(at, "Change email")
    assert [e.value for e in at.error] == ["That password is not right."] and not at.success and not mailer.sent
    assert (at.text_input(key="ec_email").value, at.text_input(key="ec_password").value) == ("new@example.com", "")
    answers = []
    for address in ("new@example.com", "BOB@example.com"):
        clock.advance(minutes=1)  # one a minute
        at.text_input(key="ec_email").input(address)
        at.text_input(key="ec_password").input(PASSWORD)
        at = submit(at, "Change email")
        assert not at.exception and not at.error
        assert (at.text_input(key="ec_email").value, at.text_input(key="ec_password").value) == ("", "")
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
    assert f"Your email: **{md('alice@example.com')}**" in texts(at)  # nothing changes until the new address confirms
    at.text_input(key="ec_email").input("third@example.com")
    at.text_input(key="ec_password").input(PASSWORD)
    at = submit(at, "Change email")  # within the minute: said, nothing mailed, the address kept to try again
    assert [e.value for e in at.error] == ["We just sent a link. You can ask to change your address again in a minute."]
    assert len(mailer.sent) == 4 and at.text_input(key="ec_email").value == "third@example.com"


def test_settings_shows_the_address_waiting_to_be_confirmed_and_cancels_it(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container, "alice")
    at = settings_page(app, monkeypatch, sign_in(container))
    assert not at.info and not [b for b in at.button if b.key == "ec_cancel"]  # nothing waits
    at.text_input(key="ec_email").input("new@example.com")
    at.text_input(key="ec_password").input(PASSWORD)
    at = submit(at, "Change email")
    (waiting,) = [i.value for i in at.info if "Waiting to change" in i.value]
    assert f"**{md('new@example.com')}**" in waiting and "Until then your email stays as it is." in waiting
    sent = link_token(mailer, "verify", index=-2)

    at = at.button(key="ec_cancel").click().run()
    assert [s.value for s in at.success] == ["Email change cancelled: its link no longer works."]
    assert not [i for i in at.info if "Waiting to change" in i.value] and not at.exception
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, sent)
    assert "email_change_cancelled" in [e.event for e in audit.list_events(container, alice.id)]


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
    assert next(s.value for s in at.success).startswith("Your account and everything in it are deleted")
    at.text_input(key="sign_in_login").input("someone")
    assert next(s.value for s in at.run().success).startswith("Your account")  # it stays said while she is here
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
    # the click is answered, not only the tab drawn anew: it says what changed, once
    said = [s.value for s in at.success]
    assert len(said) == 1 and said[0].startswith("Two-factor sign-in is off: your password alone signs you in")
    assert not at.run().success


def test_two_factor_tab_counts_the_recovery_codes_left_and_warns_before_they_run_out(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who lost the phone signs in with recovery codes, one spent each time: the tab says how many are
    left (it said nothing, so the last one could go unnoticed and lock them out), and warns when few are."""
    alice = make_user(container, "alice")
    secret = enable_totp(container, alice.id)
    clock.advance(seconds=30)
    codes = totp.regenerate_recovery_codes(container, alice.id, password=PASSWORD, code=code_at(secret, clock()))

    def with_recovery_code(code: str) -> str:
        step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
        assert step.challenge
        return auth.redeem_ticket(container, ticket=auth.complete_totp(container, challenge=step.challenge, code=code))

    at = settings_page(app, monkeypatch, with_recovery_code(codes[0]))
    assert "9 unused recovery codes left." in [c.value for c in at.caption] and not at.warning
    for code in codes[1:7]:
        token = with_recovery_code(code)
    at = settings_page(app, monkeypatch, token)
    assert [w.value for w in at.warning] == [
        "3 unused recovery codes left. Make new ones below (your password and a code) before you run out."
    ]


def test_two_factor_waits_until_the_address_is_confirmed(
    app: AppFactory, monkeypatch: pytest.MonkeyPatch, container: Container
) -> None:
    """Someone who registered another person's address must not put their own phone on it."""
    make_user(container, "alice", verified=False)
    at = settings_page(app, monkeypatch, sign_in(container))
    assert any("Confirm your email address first" in i.value for i in at.info)
    assert "Set up two-factor sign-in" not in [b.label for b in at.button]


def test_a_form_submitted_after_the_session_ended_does_nothing(
    app: AppFactory, container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form's action runs before the page's sign-in check, so it checks for itself: signed out elsewhere (or
    timed out) between drawing the form and pressing its button, no link is sent."""
    make_user(container, "alice")
    cookie = sign_in(container)
    at = settings_page(app, monkeypatch, cookie)
    at.text_input(key="ec_email").input("new@example.com")
    at.text_input(key="ec_password").input(PASSWORD)
    sessions.sign_out(container, cookie)
    at = submit(at, "Change email")
    assert not at.exception and not at.success and not mailer.sent
    assert [b.label for b in at.button] == ["Sign in"]  # the app shows sign-in, not the form


def test_a_session_list_shows_an_intruders_browser_name_as_typed_not_as_a_link(
    app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The User-Agent is whoever signed in's to write, and the Sessions list is where the owner looks for an intruder:
    its tooltip (Markdown) must not turn their words into a link or formatting."""
    make_user(container, "alice")
    here = sign_in(container)
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.7")
    assert step.ticket
    lure = "[Not you? Secure your account](https://evil.example/reset) **now**"
    auth.redeem_ticket(container, ticket=step.ticket, ip="203.0.113.7", user_agent=lure)
    at = settings_page(app, monkeypatch, here)
    (tooltip,) = [t.proto.help for t in at.text if t.proto.help and "evil" in t.proto.help]
    assert tooltip == md(lure)  # escaped: the browser shows the brackets, the address and the stars as typed
    assert "](" not in tooltip and "**" not in tooltip
