"""Password reset: links that live 30 minutes and work once, die when superseded or when the owner shows they know the
password, end every session, keep two-factor, and are limited per account and address (B1-B3, B5-B8, C3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from models import AuditEvent, User
from services import account, admin, auth, passwords, sessions, tokens, totp
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials, SignInEnded, TokenInvalid
from services.mailer import MemoryMailer
from services.users import UserPublic
from tests.factories import FakeClock
from tests.integration.auth_support import (
    EMOJI,
    IP,
    OTHER_PASSWORD,
    PASSWORD,
    code_at,
    enable_totp,
    fast_hashing,  # noqa: F401 - the fixture pytestmark names
    link_token,
    mails_to,
    make_admin,
    make_user,
    registered,
    sign_in,
    user_row,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")


def test_reset_link_lives_30_minutes_and_works_once(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    make_user(container)
    auth.request_password_reset(container, email="alice@example.com", ip="10.0.0.5")
    token = link_token(mailer, "reset")
    assert f"{container.settings.base_url}/?reset={token}" in str(mailer.sent[-1].get_content())
    clock.advance(minutes=29, seconds=59)
    auth.reset_password(container, token=token, new_password=OTHER_PASSWORD)
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=token, new_password=PASSWORD)
    clock.advance(minutes=1)
    auth.request_password_reset(container, email="alice@example.com")
    late = link_token(mailer, "reset")
    clock.advance(minutes=30)
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=late, new_password=PASSWORD)
    sign_in(container, "alice", OTHER_PASSWORD)


def test_reset_is_silent_and_identical_for_unknown_addresses(container: Container, mailer: MemoryMailer) -> None:
    make_user(container)
    assert auth.request_password_reset(container, email="nobody@example.com") is None
    assert mailer.sent == []
    assert auth.request_password_reset(container, email="alice@example.com") is None
    assert len(mailer.sent) == 1


def test_a_newer_reset_or_a_confirmed_email_change_kills_older_links(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    auth.request_password_reset(container, email="alice@example.com")
    old = link_token(mailer, "reset")
    clock.advance(seconds=61)
    auth.request_password_reset(container, email="alice@example.com")
    newer = link_token(mailer, "reset")
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=old, new_password=OTHER_PASSWORD)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="alice2@example.com")
    assert auth.reset_link_usable(container, newer)  # asking is not enough: the new address must confirm
    auth.verify_email(container, link_token(mailer, "verify", index=-2))
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=newer, new_password=OTHER_PASSWORD)


def _sign_in_with_the_password(c: Container, alice: UserPublic) -> None:
    sign_in(c)


def _change_the_password(c: Container, alice: UserPublic) -> None:
    auth.change_password(c, alice.id, current_password=PASSWORD, new_password=OTHER_PASSWORD)


@pytest.mark.parametrize("proof", [_sign_in_with_the_password, _change_the_password], ids=["sign_in", "change"])
def test_a_reset_link_dies_when_the_owner_shows_they_know_the_password(
    container: Container, mailer: MemoryMailer, proof: Callable[[Container, UserPublic], None]
) -> None:
    """Someone else's reset link (or an old one in a mailbox) is dead once the owner signs in or changes it."""
    alice = make_user(container)
    auth.request_password_reset(container, email="alice@example.com")
    token = link_token(mailer, "reset")
    with pytest.raises(InvalidCredentials):  # a wrong guess proves nothing: the link stays
        auth.begin_sign_in(container, login="alice", password="guess guess guess guess")
    with pytest.raises(InputError):
        auth.change_password(container, alice.id, current_password="guess guess guess guess", new_password=EMOJI)
    assert auth.reset_link_usable(container, token)
    proof(container, alice)
    assert not auth.reset_link_usable(container, token)
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=token, new_password="marble falcon orchard 5521 quilt")


def test_with_two_factor_a_reset_link_dies_at_the_code_not_at_the_password(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    secret = enable_totp(container, alice.id)
    auth.request_password_reset(container, email="alice@example.com")
    token = link_token(mailer, "reset")
    clock.advance(seconds=30)
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    assert step.kind == "totp" and auth.reset_link_usable(container, token)  # half a sign-in proves too little
    auth.complete_totp(container, challenge=str(step.challenge), code=code_at(secret, clock()))
    assert not auth.reset_link_usable(container, token)
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=token, new_password=OTHER_PASSWORD)


def test_reset_ends_every_session_clears_the_lock_and_sends_a_notice(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    make_user(container)
    tokens = [sign_in(container), sign_in(container)]
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            auth.begin_sign_in(container, login="alice", password="attacker guess guess")
    auth.request_password_reset(container, email="alice@example.com")
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    assert all(sessions.current_user(container, t) is None for t in tokens)
    sign_in(container, "alice", OTHER_PASSWORD)  # the attacker's lock is gone (C3)
    assert "finsync: your password was reset" in mails_to(mailer, "alice@example.com")
    assert all(OTHER_PASSWORD not in str(m.get_content()) for m in mailer.sent)


@pytest.mark.parametrize("verified", [True, False])
def test_a_reset_takes_back_an_unconfirmed_account_squatted_with_someone_else_s_authenticator(
    container: Container, clock: FakeClock, mailer: MemoryMailer, verified: bool
) -> None:
    """Someone registers the victim's address and turns on two-factor with their own phone; the mailbox's
    owner resets the password. On a confirmed account two-factor stays (a reset proves only the mailbox).

    Two-factor can no longer be set up before the address is confirmed; an account squatted before that rule
    (two-factor on, address unconfirmed) is still taken back by a reset."""
    squatter = make_user(container, verified=True)
    if not verified:
        _set_verified(container, squatter.id, False)
        with pytest.raises(InputError, match="Confirm your email address first"):
            totp.start_totp_enrolment(container, squatter.id)
        _set_verified(container, squatter.id, True)  # as an older finsync allowed: two-factor on, then...
    secret = enable_totp(container, squatter.id)
    _set_verified(container, squatter.id, verified)  # ...the address still unconfirmed
    auth.request_password_reset(container, email="alice@example.com")
    clock.advance(seconds=31)
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    step = auth.begin_sign_in(container, login="alice", password=OTHER_PASSWORD)
    if verified:
        assert step.kind == "totp"  # the owner's own second factor stays
        auth.complete_totp(container, challenge=str(step.challenge), code=code_at(secret, clock()))
        return
    assert step.kind == "ticket"  # the squatter's authenticator no longer gates the owner's account
    row = user_row(container, squatter.id)
    assert row.email_verified and not row.totp_enabled and row.totp_secret_enc is None
    assert "turned off" in str(mailer.sent[-1].get_content())
    with pytest.raises(InvalidCredentials):  # and the squatter's old password is gone
        auth.begin_sign_in(container, login="alice", password=PASSWORD)


def _set_verified(c: Container, user_id: object, verified: bool) -> None:
    with unit_of_work(c.engine) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.email_verified = verified


def test_reset_requests_are_limited_per_account_and_address(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    make_user(container)
    make_user(container, "bob")
    for _ in range(5):
        auth.request_password_reset(container, email="alice@example.com", ip="10.9.9.9")
    assert len(mailer.sent) == 1  # at most one a minute per account
    for n in range(6):
        clock.advance(seconds=1)
        auth.request_password_reset(container, email=f"u{n}@example.com", ip="10.9.9.9")
    auth.request_password_reset(container, email="bob@example.com", ip="10.9.9.9")  # the 12th in 3 minutes
    assert len(mailer.sent) == 1
    auth.request_password_reset(container, email="bob@example.com", ip="10.9.9.10")
    assert len(mailer.sent) == 2


def test_a_flood_of_reset_requests_past_the_address_limit_adds_one_audit_row(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """The audit table is append-only: the address's pause is recorded once, by the request that fills its budget,
    and the requests refused in it (for an account or for nobody: alike) write nothing and send nothing."""

    def rows() -> list[tuple[str, str, str]]:
        with unit_of_work(container.engine) as session:
            said = session.execute(select(AuditEvent.event, AuditEvent.ip, AuditEvent.detail))
            return sorted((event, ip, detail) for event, ip, detail in said)

    make_user(container)
    for n in range(account.RESET_IP_LIMIT):
        auth.request_password_reset(container, email=f"u{n}@example.com", ip="10.9.9.9")
    before = rows()
    assert [r for r in before if r[0] == "ip_throttled"] == [("ip_throttled", "10.9.9.9", "password reset")]
    for n in range(40):
        clock.advance(seconds=1)
        assert auth.request_password_reset(container, email=("alice@example.com", "nobody@example.com")[n % 2],
                                           ip="10.9.9.9") is None  # fmt: skip
    assert rows() == before and mailer.sent == []
    clock.advance(minutes=3)  # the flood counted too: the pause lasts until the address has been quiet a while
    auth.request_password_reset(container, email="alice@example.com", ip="10.9.9.9")
    assert len(mailer.sent) == 1


@pytest.mark.parametrize("how", ["reset", "change"])
def test_a_sign_in_with_the_old_password_under_way_during_a_reset_or_change_gets_no_session(
    container: Container, clock: FakeClock, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The password is checked outside any transaction (bcrypt takes a quarter second). Someone who knows the old
    password and keeps signing in always has an attempt under way: the owner's reset (or change) ends every
    session and sign-in ticket, and the attempt that was checking the old password must not open a new one."""
    make_user(container)
    owner = sign_in(container)
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    check, done = passwords.verify_password, []

    def owner_acts_meanwhile(secret: str, *args: object, **kwargs: object) -> bool:
        right = check(secret, *args, **kwargs)  # type: ignore[arg-type]
        if not done:  # the intruder's old password is right here; the owner takes the account back before it lands
            done.append(how)
            if how == "reset":
                auth.reset_password(container, token=link, new_password=OTHER_PASSWORD)
            else:
                view = sessions.current_user(container, owner)
                assert view is not None
                auth.change_password(container, view.user.id, current_password=PASSWORD,
                                     new_password=OTHER_PASSWORD, current_token=owner)  # fmt: skip
        return right

    monkeypatch.setattr(passwords, "verify_password", owner_acts_meanwhile)
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.66")
    monkeypatch.setattr(passwords, "verify_password", check)
    assert done == [how]
    with pytest.raises(InvalidCredentials):  # and the old password stays dead afterwards
        sign_in(container, "alice", PASSWORD)
    sign_in(container, "alice", OTHER_PASSWORD)


def _interleaved(
    monkeypatch: pytest.MonkeyPatch, purpose: str, spend: Callable[[], object], end: Callable[[], object]
) -> tuple[object, object]:
    """Run ``spend`` (a flow spending a token of ``purpose``) and ``end`` (one ending the account's tokens) so that
    ``end`` starts just after ``spend`` has found its token: the interleaving that deadlocked on PostgreSQL while
    ``spend`` locked the token before the account. Each result, or the exception it raised."""
    find, looked = tokens.find, threading.Event()

    def slow_find(*args: Any, **kwargs: Any) -> Any:
        row = find(*args, **kwargs)
        if purpose in args[2] and not looked.is_set():
            looked.set()  # the token is found: the other flow arrives now
            time.sleep(1.0)
        return row

    monkeypatch.setattr(tokens, "find", slow_find)
    got: dict[str, object] = {}

    def run(name: str, act: Callable[[], object]) -> None:
        if name == "end":
            looked.wait(10)
            time.sleep(0.2)
        try:
            got[name] = act()
        except Exception as exc:
            got[name] = exc

    threads = [threading.Thread(target=run, args=pair) for pair in (("spend", spend), ("end", end))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(tokens, "find", find)
    return got["spend"], got["end"]


def test_a_reset_while_a_code_is_being_checked_is_answered_as_if_one_came_after_the_other(
    container: Container, clock: FakeClock, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone with the password and a code (a stolen recovery code) sends it while the owner resets. The code step
    took the challenge, then the account; the reset takes the account, then ends the challenges: on PostgreSQL the
    two deadlocked and the owner's reset failed with a database error. Now neither fails: as if one came after the
    other, either the reset ends the code step's challenge, or the code signs in first (which, by design, spends
    the reset link: bar B2) and the reset says the link is dead."""
    alice = make_user(container)
    secret = enable_totp(container, alice.id)
    clock.advance(seconds=30)  # past the step the set-up spent
    challenge = auth.begin_sign_in(container, login="alice", password=PASSWORD).challenge or ""
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    code, reset = _interleaved(
        monkeypatch,
        tokens.CHALLENGE,
        lambda: auth.complete_totp(container, challenge=challenge, code=code_at(secret, clock()), ip=IP),
        lambda: auth.reset_password(container, token=link, new_password=OTHER_PASSWORD),
    )
    if isinstance(code, str):  # the code went first (SQLite queues the two): signed in, and the link spent
        assert isinstance(reset, TokenInvalid), repr(reset)
        assert auth.redeem_ticket(container, ticket=code)
        assert auth.begin_sign_in(container, login="alice", password=PASSWORD).kind == "totp"
    else:  # the reset went first: the code step finds its challenge ended, and no session opens
        assert reset is None and isinstance(code, SignInEnded), (repr(reset), repr(code))  # not DeadlockDetected
        assert sessions.list_sessions(container, alice.id, None) == []
        assert auth.begin_sign_in(container, login="alice", password=OTHER_PASSWORD).kind == "totp"


def test_a_reset_link_used_while_the_password_is_changed_is_answered_as_if_one_came_after_the_other(
    container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reset took its link, then the account; a password change takes the account, then ends the reset links:
    on PostgreSQL the two deadlocked and one failed with a database error. Now exactly one of them sets a password."""
    alice = make_user(container)
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    reset, change = _interleaved(
        monkeypatch,
        tokens.RESET,
        lambda: auth.reset_password(container, token=link, new_password=OTHER_PASSWORD),
        lambda: auth.change_password(container, alice.id, current_password=PASSWORD, new_password=EMOJI),
    )
    if reset is None:  # the reset went first: the change is asked for the password it replaced
        assert isinstance(change, InputError) and "not right" in str(change), repr(change)
        assert auth.begin_sign_in(container, login="alice", password=OTHER_PASSWORD).kind == "ticket"
    else:  # the change went first and ended the link (SQLite may queue them either way)
        assert change is None and isinstance(reset, TokenInvalid), (repr(change), repr(reset))  # no DeadlockDetected
        assert auth.begin_sign_in(container, login="alice", password=EMOJI).kind == "ticket"


def test_a_verification_link_used_while_an_admin_disables_the_account_is_answered_in_turn(
    container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verifying took the link, then wrote the account; disabling writes the account, then ends its links: on
    PostgreSQL the two deadlocked and one failed. Now the account ends disabled either way, the link spent or dead."""
    root = make_admin(container)
    auth.register(container, email="alice@example.com", username="alice", password=PASSWORD)
    alice = registered(container, "alice@example.com")
    link = link_token(mailer, "verify")
    verified, disabled = _interleaved(
        monkeypatch,
        tokens.VERIFY,
        lambda: auth.verify_email(container, link),
        lambda: admin.set_disabled(container, root.id, alice.id, True),
    )
    assert disabled is None, repr(disabled)  # not DeadlockDetected
    assert isinstance(verified, UserPublic | TokenInvalid), repr(verified)
    assert user_row(container, alice.id).status == "disabled"


def test_a_sign_in_landing_while_a_reset_holds_its_link_is_answered_as_if_one_came_after_the_other(
    container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner resets while someone with the password (or the owner in another tab) signs in. The reset took its
    link, then the account; a sign-in takes the account, then spends the reset links (bar B2): on PostgreSQL the two
    deadlocked and one of them failed with a database error. Now they queue: either the reset lands first and the
    old password is refused, or the sign-in lands first and the reset finds its link spent."""
    make_user(container)
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    reset, signed = _interleaved(  # the reset has found its link: the sign-in lands now
        monkeypatch,
        tokens.RESET,
        lambda: auth.reset_password(container, token=link, new_password=OTHER_PASSWORD),
        lambda: auth.begin_sign_in(container, login="alice", password=PASSWORD, ip=IP).ticket,
    )
    if isinstance(signed, str):  # the sign-in went first: the link is spent, the password unchanged
        assert isinstance(reset, TokenInvalid), repr(reset)
        sign_in(container, "alice", PASSWORD)
    else:  # the reset went first: the old password opens nothing
        assert reset is None and isinstance(signed, InvalidCredentials), (repr(reset), repr(signed))
        sign_in(container, "alice", OTHER_PASSWORD)


def test_an_address_confirmed_while_a_reset_lands_is_answered_as_if_one_came_after_the_other(
    container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new address's link took its token, then the account; a reset takes the account, then ends the pending
    address change: on PostgreSQL the two deadlocked and one failed with a database error. Now either the change
    lands first (and spends the reset link), or the reset does (and the change's link is dead)."""
    alice = make_user(container)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="alice2@example.com")
    confirm = next(
        link_token(mailer, "verify", i) for i, m in enumerate(mailer.sent) if m["To"] == "alice2@example.com"
    )
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    changed, reset = _interleaved(  # the new address's link is found: the owner's reset lands now
        monkeypatch,
        tokens.EMAIL_CHANGE,
        lambda: auth.verify_email(container, confirm),
        lambda: auth.reset_password(container, token=link, new_password=OTHER_PASSWORD),
    )
    if isinstance(changed, UserPublic):  # the change went first: its reset links are spent
        assert isinstance(reset, TokenInvalid) and changed.email == "alice2@example.com", repr(reset)
    else:  # the reset went first: the pending change ended with it
        assert reset is None and isinstance(changed, TokenInvalid), (repr(reset), repr(changed))
        assert user_row(container, alice.id).email == "alice@example.com"
