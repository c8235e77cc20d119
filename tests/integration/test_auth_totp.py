"""Two-factor sign-in: enrolment, window, replay, input format, tries, recovery codes, switching off (E1-E7, B5)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from models import AuditEvent, RecoveryCode, User
from services import audit, auth, sessions, totp
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials, SignInEnded
from services.mailer import MemoryMailer
from services.users import UserPublic
from tests.factories import FakeClock
from tests.integration.auth_support import (  # noqa: F401
    PASSWORD,
    all_at_once,
    code_at,
    fast_hashing,
    link_token,
    mails_to,
    make_admin,
    make_user,
    session_of,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")


def _enrol(c: Container, clock: FakeClock, user: UserPublic) -> tuple[str, list[str]]:
    enrolment = totp.start_totp_enrolment(c, user.id)
    codes = totp.confirm_totp(c, user.id, code=code_at(enrolment.secret, clock()), password=PASSWORD)
    clock.advance(seconds=30)
    return enrolment.secret, codes


def _challenge(c: Container) -> str:
    step = auth.begin_sign_in(c, login="alice", password=PASSWORD)
    assert step.kind == "totp" and step.challenge and step.ticket is None
    return step.challenge


def test_enrolment_needs_a_valid_code_and_stores_the_secret_encrypted(container: Container, clock: FakeClock) -> None:
    alice = make_user(container)
    enrolment = totp.start_totp_enrolment(container, alice.id)
    assert len(enrolment.secret) == 32  # 160 bits
    assert enrolment.uri.startswith("otpauth://totp/finsync:") and "issuer=finsync" in enrolment.uri
    assert enrolment.qr_html.startswith('<img src="data:image/svg+xml')
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    assert step.kind == "ticket"  # nothing switched on yet
    with pytest.raises(InputError):
        totp.confirm_totp(container, alice.id, code="000000", password=PASSWORD)
    with pytest.raises(InputError):  # the right code without the password: a stolen session cannot enrol
        totp.confirm_totp(container, alice.id, code=code_at(enrolment.secret, clock()), password="wrong")
    assert not auth.begin_sign_in(container, login="alice", password=PASSWORD).challenge
    codes = totp.confirm_totp(container, alice.id, code=code_at(enrolment.secret, clock()), password=PASSWORD)
    assert len(codes) == 10 and len(set(codes)) == 10
    with container.engine.connect() as conn:
        dump = repr(conn.execute(text("SELECT * FROM users")).fetchall())
        dump += repr(conn.execute(text("SELECT * FROM recovery_codes")).fetchall())
    assert enrolment.secret not in dump and enrolment.secret.encode() not in dump.encode()
    assert all(code.replace("-", "") not in dump for code in codes)


def test_turning_2fa_on_ends_every_other_session(container: Container, clock: FakeClock) -> None:
    """A session stolen before 2FA went on proved only the password: it must not outlive the switch."""
    alice = make_user(container)
    here, stolen = sign_in(container), sign_in(container)
    enrolment = totp.start_totp_enrolment(container, alice.id, session_id=session_of(container, here))
    code = code_at(enrolment.secret, clock())
    totp.confirm_totp(container, alice.id, code=code, password=PASSWORD, current_token=here)
    assert sessions.current_user(container, here) is not None
    assert sessions.current_user(container, stolen) is None
    enabled = [e for e in audit.list_events(container, alice.id) if e.event == "totp_enabled"]
    assert [e.detail for e in enabled] == ["1 other session ended"]


def test_sign_in_asks_for_the_code_and_accepts_one_step_either_side(container: Container, clock: FakeClock) -> None:
    alice = make_user(container)
    secret, _ = _enrol(container, clock, alice)
    for offset in (-1, 0, 1):
        clock.advance(seconds=90)
        ticket = auth.complete_totp(container, challenge=_challenge(container), code=code_at(secret, clock(), offset))
        assert auth.redeem_ticket(container, ticket=ticket)
    clock.advance(seconds=300)
    for stale in (-10, -2, 2):  # five minutes ago, two steps back or ahead
        with pytest.raises(InvalidCredentials):
            auth.complete_totp(container, challenge=_challenge(container), code=code_at(secret, clock(), stale))


def test_a_code_is_never_accepted_twice_and_replay_is_reported(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    secret, _ = _enrol(container, clock, alice)
    code = code_at(secret, clock())
    auth.complete_totp(container, challenge=_challenge(container), code=code)
    before = len(mails_to(mailer, "alice@example.com"))
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(container, challenge=_challenge(container), code=code)
    clock.advance(seconds=29)  # an earlier step is also spent once a later one was used
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(container, challenge=_challenge(container), code=code)
    assert [e.event for e in audit.list_events(container, alice.id)].count("totp_replay") == 2
    assert "used twice" in mails_to(mailer, "alice@example.com")[before]


RACERS = 8


@pytest.mark.parametrize("which", ["app code", "recovery code"])
def test_one_code_sent_in_many_sign_ins_at_once_opens_one(container: Container, clock: FakeClock, which: str) -> None:
    """Bar E2/E7 against someone who saw a code and races its owner: the same code sent with several challenges at
    the same moment (on PostgreSQL, with no BEGIN IMMEDIATE to queue them) yields one sign-in, not one per request."""
    alice = make_user(container)
    secret, codes = _enrol(container, clock, alice)
    code = code_at(secret, clock()) if which == "app code" else codes[0]
    challenges = [_challenge(container) for _ in range(RACERS)]

    def attempt(i: int) -> str:  # each from its own address: the owner and whoever races them are not one client
        assert auth.complete_totp(container, challenge=challenges[i], code=code, ip=f"192.0.2.{i + 1}")
        return "ticket"

    got = all_at_once(RACERS, attempt, (InvalidCredentials,))
    assert got == Counter({"ticket": 1, "InvalidCredentials": RACERS - 1})


@pytest.mark.parametrize("bad", ["１２３４５６", "12345", "1234567", 123456, "1" * 5000, None, "' OR 1=1 --"])
def test_malformed_codes_fail_cleanly(container: Container, clock: FakeClock, bad: object) -> None:
    alice = make_user(container)
    _enrol(container, clock, alice)
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(container, challenge=_challenge(container), code=bad)  # type: ignore[arg-type]


def test_challenge_allows_five_tries_and_five_minutes(container: Container, clock: FakeClock) -> None:
    alice = make_user(container)
    secret, _ = _enrol(container, clock, alice)
    challenge = _challenge(container)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            auth.complete_totp(container, challenge=challenge, code="000000")
    from services import throttle
    from services.admin import unlock_user

    root = make_admin(container)
    unlock_user(container, root.id, alice.id)  # not locked yet: 4 failures; clearing keeps this test on the challenge
    with pytest.raises(SignInEnded):  # the fifth wrong code ends the step, and says so: sign in again
        auth.complete_totp(container, challenge=challenge, code="000000")
    with pytest.raises(SignInEnded):  # used up, even with the right code
        auth.complete_totp(container, challenge=challenge, code=code_at(secret, clock()))
    assert throttle.ACCOUNT_LIMIT == 5
    late = _challenge(container)
    clock.advance(minutes=5)
    with pytest.raises(SignInEnded):
        auth.complete_totp(container, challenge=late, code=code_at(secret, clock()))
    with pytest.raises(SignInEnded):  # a made-up challenge reads the same: nothing to tell apart
        auth.complete_totp(container, challenge="x" * 43, code=code_at(secret, clock()))
    with pytest.raises(InvalidCredentials) as wrong:  # a wrong code on a live step keeps the one generic message
        auth.complete_totp(container, challenge=_challenge(container), code="000000")
    assert type(wrong.value) is InvalidCredentials


def test_totp_failures_lock_the_account(container: Container, clock: FakeClock, mailer: MemoryMailer) -> None:
    alice = make_user(container)
    secret, _ = _enrol(container, clock, alice)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            auth.complete_totp(container, challenge=_challenge(container), code="000000")
    events = [e.event for e in audit.list_events(container, alice.id)]
    assert events.count("totp_failed") == 5 and "account_locked" in events
    with pytest.raises(InvalidCredentials):  # the right password is refused while paused
        auth.begin_sign_in(container, login="alice", password=PASSWORD)
    clock.advance(minutes=15)
    ticket = auth.complete_totp(container, challenge=_challenge(container), code=code_at(secret, clock()))
    assert ticket


def test_recovery_codes_work_once_each(container: Container, clock: FakeClock, mailer: MemoryMailer) -> None:
    alice = make_user(container)
    _, codes = _enrol(container, clock, alice)
    assert all(len(c) == 29 and [len(g) for g in c.split("-")] == [5] * 5 for c in codes)  # 125 bits of base32
    assert auth.complete_totp(container, challenge=_challenge(container), code=codes[0].upper())
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(container, challenge=_challenge(container), code=codes[0])
    assert "recovery_code_used" in [e.event for e in audit.list_events(container, alice.id)]
    with unit_of_work(container.engine) as session:
        hashes = session.execute(select(RecoveryCode.code_hash)).scalars().all()
    assert len(hashes) == 10 and all(len(h) == 64 for h in hashes)


def test_switching_off_needs_password_and_code(container: Container, clock: FakeClock, mailer: MemoryMailer) -> None:
    alice = make_user(container)
    secret, codes = _enrol(container, clock, alice)
    with pytest.raises(InputError, match="password"):
        totp.disable_totp(container, alice.id, password="wrong wrong wrong wrong", code=code_at(secret, clock()))
    with pytest.raises(InputError, match="code"):
        totp.disable_totp(container, alice.id, password=PASSWORD, code="000000")
    with pytest.raises(InputError, match="code"):
        totp.disable_totp(container, alice.id, password=PASSWORD, code="")
    new_codes = totp.regenerate_recovery_codes(container, alice.id, password=PASSWORD, code=code_at(secret, clock()))
    assert set(new_codes).isdisjoint(codes)
    with unit_of_work(container.engine) as session:  # the user can see when new codes were made
        made = session.execute(select(AuditEvent).where(col(AuditEvent.event) == "recovery_codes_regenerated"))
        assert [e.user_id for e in made.scalars()] == [alice.id]
    clock.advance(seconds=30)
    totp.disable_totp(container, alice.id, password=PASSWORD, code=code_at(secret, clock()))
    assert auth.begin_sign_in(container, login="alice", password=PASSWORD).kind == "ticket"
    subjects = mails_to(mailer, "alice@example.com")
    assert "finsync: two-factor sign-in is on" in subjects and "finsync: two-factor sign-in is off" in subjects
    with unit_of_work(container.engine) as session:
        row = session.get(User, alice.id)
        assert row is not None and row.totp_secret_enc is None
        assert session.execute(select(RecoveryCode)).first() is None


def test_password_reset_does_not_switch_two_factor_off(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    secret, _ = _enrol(container, clock, alice)
    auth.request_password_reset(container, email="alice@example.com")
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password="velvet harbor sparrow 2031")
    step = auth.begin_sign_in(container, login="alice", password="velvet harbor sparrow 2031")
    assert step.kind == "totp"
    assert auth.complete_totp(container, challenge=step.challenge or "", code=code_at(secret, clock()))


def test_an_enrolment_waits_on_the_account_until_confirmed_and_starting_again_replaces_it(
    container: Container, clock: FakeClock
) -> None:
    """The page keeps no TOTP secret (CONVENTIONS: none in session_state): the account holds the pending one."""
    alice = make_user(container)
    assert totp.pending_enrolment(container, alice.id) is None
    first = totp.start_totp_enrolment(container, alice.id)
    assert totp.pending_enrolment(container, alice.id) == first  # a rerun of the page shows the same QR code
    assert not auth.begin_sign_in(container, login="alice", password=PASSWORD).challenge  # not on yet
    second = totp.start_totp_enrolment(container, alice.id)
    assert second.secret != first.secret
    with pytest.raises(InputError, match="does not match"):  # the first phone's codes no longer count
        totp.confirm_totp(container, alice.id, code=code_at(first.secret, clock()), password=PASSWORD)
    totp.confirm_totp(container, alice.id, code=code_at(second.secret, clock()), password=PASSWORD)
    assert totp.pending_enrolment(container, alice.id) is None


def test_a_setup_belongs_to_the_session_that_started_it(container: Container, clock: FakeClock) -> None:
    """A session stolen once must not leave its own QR code for the owner to scan later (after a password reset, in
    a new session): nor may any other session read the secret the owner is scanning right now."""
    alice = make_user(container)
    thief, owner = sign_in(container), sign_in(container)
    planted = totp.start_totp_enrolment(container, alice.id, session_id=session_of(container, thief))
    assert totp.pending_enrolment(container, alice.id, session_id=session_of(container, thief)) == planted
    assert totp.pending_enrolment(container, alice.id, session_id=session_of(container, owner)) is None
    with pytest.raises(InputError, match="start again"):  # the owner cannot switch on the thief's secret either
        totp.confirm_totp(
            container, alice.id, code=code_at(planted.secret, clock()), password=PASSWORD, current_token=owner
        )
    assert not _two_factor_on(container, alice.id)

    own = totp.start_totp_enrolment(container, alice.id, session_id=session_of(container, owner))
    assert own.secret != planted.secret
    assert totp.pending_enrolment(container, alice.id, session_id=session_of(container, thief)) is None
    with pytest.raises(InputError, match="start again"):  # nor can the thief confirm the owner's, with her password
        totp.confirm_totp(
            container, alice.id, code=code_at(own.secret, clock()), password=PASSWORD, current_token=thief
        )
    totp.confirm_totp(container, alice.id, code=code_at(own.secret, clock()), password=PASSWORD, current_token=owner)
    assert _two_factor_on(container, alice.id)


def test_a_setup_left_unconfirmed_expires(container: Container, clock: FakeClock) -> None:
    alice = make_user(container)
    here = sign_in(container)
    mine = session_of(container, here)
    started = totp.start_totp_enrolment(container, alice.id, session_id=mine)
    clock.advance(minutes=29)
    assert totp.pending_enrolment(container, alice.id, session_id=mine) == started
    clock.advance(minutes=1)
    assert totp.pending_enrolment(container, alice.id, session_id=mine) is None  # the page offers a fresh start
    with pytest.raises(InputError, match="start again"):
        totp.confirm_totp(
            container, alice.id, code=code_at(started.secret, clock()), password=PASSWORD, current_token=here
        )


def _two_factor_on(c: Container, user_id: object) -> bool:
    with unit_of_work(c.engine) as session:
        user = session.get(User, user_id)
        return user is not None and user.totp_enabled
