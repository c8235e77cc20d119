"""Registration, verification, reset, password and email change, deletion (A2, A8, B1-B10, C3, D6, F1)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import bcrypt
import pytest
from sqlalchemy import func, select

from models import AuditEvent, AuthSession, OneTimeToken, User
from services import audit, auth, passwords, sessions
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials, PermissionDenied, Throttled, TokenInvalid
from services.mailer import MemoryMailer
from services.users import UserPublic
from tests.factories import FakeClock
from tests.integration.auth_support import (  # noqa: F401
    OTHER_PASSWORD,
    PASSWORD,
    code_at,
    enable_totp,
    fast_hashing,
    link_token,
    mails_to,
    make_user,
    registered,
    sign_in,
    sign_in_with_code,
    user_row,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")
EMOJI = "🦊🌵🎻🧲🪁🛶🧊🦉🌋🎲🧵🪐🦔🍄🛸🐙🎺🧭🪴🦩🍉🚲🪕🦜🌶️🧤🎯🪶🐳🧁🛼🌈🧿🐝🥁🪩🦕🌻🎹🍋🐚🪃🥨🦚🧃🗿🪸🦑🎠🌵"


def _users(c: Container) -> int:
    with unit_of_work(c.engine) as session:
        return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def test_register_verify_and_sign_in_with_a_200_byte_emoji_password(container: Container, mailer: MemoryMailer) -> None:
    password = EMOJI[: len(EMOJI)]
    while len(password.encode()) > 200:
        password = password[:-1]
    assert 190 <= len(password.encode()) <= 200
    received = auth.register(container, email="Zoë@Example.com", username="zoe", password=password, ip="10.1.1.1")
    user = registered(container, "zoë@example.com")
    assert received.email == user.email and not user.email_verified
    with pytest.raises(PermissionDenied, match="Verify your email"):
        auth.require_verified(container, user.id)
    (message,) = mailer.sent
    assert message["Subject"] == "Verify your email for finsync" and password not in str(message.get_content())
    token = link_token(mailer, "verify")
    assert f"{container.settings.base_url}/?verify={token}" in str(message.get_content())
    sign_in(container, "zoe", password)  # unverified users can sign in
    assert auth.verify_email(container, token).email_verified
    auth.require_verified(container, user.id)
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, token)  # single use
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="zoe", password=password[:-1])


def test_a_taken_username_is_said_plainly_after_nfkc_and_casefold(container: Container, mailer: MemoryMailer) -> None:
    make_user(container)
    for email, username in [
        ("new@example.com", "ALICE"),
        ("n@example.com", "ＡＬＩＣＥ"),  # fullwidth letters fold to "alice"
        ("alice@example.com", "Alice"),  # whatever the email: a known username cannot probe addresses
    ]:
        with pytest.raises(InputError, match="That username is taken; choose another"):
            auth.register(container, email=email, username=username, password=PASSWORD)
    assert _users(container) == 1 and mailer.sent == []


def _registration_events(c: Container, user_id: uuid.UUID) -> list[str]:
    return [e.detail for e in audit.list_events(c, user_id) if e.event == "registration_email_taken"]


def test_a_taken_email_in_any_case_gets_the_new_account_answer_and_the_owner_a_notice(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    fresh = auth.register(container, email="bob@Example.COM", username="bob", password=OTHER_PASSWORD)
    assert fresh == auth.RegistrationReceived("bob@example.com")
    mailer.sent.clear()
    answer = auth.register(container, email="ALICE@Example.COM", username="mallory", password=OTHER_PASSWORD)
    assert answer == auth.RegistrationReceived("ALICE@example.com")  # the address as typed, not as stored
    assert _users(container) == 2
    (notice,) = mailer.sent
    body = str(notice.get_content())
    assert notice["To"] == "alice@example.com" and "tried to register" in str(notice["Subject"])
    assert "sign in" in body and "Forgot your password?" in body
    assert not re.search(r"[?&=][A-Za-z0-9_-]{20,}", body)  # no link with a token: nothing that changes anything
    assert _registration_events(container, alice.id) == ["notice mailed"]
    with unit_of_work(container.engine) as session:  # and no link was made that a later mail could carry
        assert not session.execute(select(OneTimeToken).where(OneTimeToken.user_id == alice.id)).all()  # type: ignore[arg-type]
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice", password=OTHER_PASSWORD)  # the account is untouched
    assert sign_in(container, "alice")

    clock.advance(minutes=59)  # again within the hour, spelled another way: audited, not mailed again
    auth.register(container, email="alice@EXAMPLE.com", username="mallory2", password=OTHER_PASSWORD, ip="10.9.9.9")
    assert len(mailer.sent) == 1 and _users(container) == 2
    assert _registration_events(container, alice.id) == ["limited", "notice mailed"]
    clock.advance(minutes=1)
    auth.register(container, email="alice@example.com", username="mallory3", password=OTHER_PASSWORD)
    assert [m["To"] for m in mailer.sent] == ["alice@example.com", "alice@example.com"]


def test_a_registration_that_loses_a_race_for_the_address_gets_the_taken_answer(
    container: Container, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The address is free when checked but taken at insert (a concurrent twin): retried, same answer, no error."""
    alice = make_user(container)
    from services import users

    real, seen = users.find_by_email, []

    def free_the_first_time(*args: object, **kw: object) -> object:
        seen.append(1)
        return None if len(seen) == 1 else real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(users, "find_by_email", free_the_first_time)
    answer = auth.register(container, email="alice@example.com", username="mallory", password=OTHER_PASSWORD)
    assert answer == auth.RegistrationReceived("alice@example.com") and len(seen) == 2
    assert _users(container) == 1 and [m["To"] for m in mailer.sent] == ["alice@example.com"]
    assert _registration_events(container, alice.id) == ["notice mailed"]


def test_a_taken_email_costs_the_same_bcrypt_hash_as_a_new_one(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container)
    calls: list[bytes] = []
    real = bcrypt.hashpw

    def counted(secret: bytes, salt: bytes) -> bytes:
        calls.append(salt)
        return real(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", counted)
    for email, username in (("new@example.com", "newbie"), ("Alice@example.com", "other")):
        calls.clear()
        auth.register(container, email=email, username=username, password=OTHER_PASSWORD)
        assert len(calls) == 1, email


def test_bad_input_is_reported_before_a_taken_email_is_looked_at(container: Container, mailer: MemoryMailer) -> None:
    alice = make_user(container)
    for fields in (
        {"password": "passwordpassword1"},
        {"username": "x"},
        {"email": "alice@exаmple.com"},  # Cyrillic "а"
    ):
        values = {"email": "alice@example.com", "username": "mallory", "password": OTHER_PASSWORD, **fields}
        with pytest.raises(InputError):
            auth.register(container, **values)
    assert mailer.sent == [] and _registration_events(container, alice.id) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a@b.c\r\nBcc: x@y.z"),
        ("email", "x" * 10_000 + "@example.com"),
        ("email", "user@exаmple.com"),
        ("email", "bob\x00@example.com"),
        ("username", "x" * 10_000),
        ("username", "bob\x00"),
        ("username", "bob\r\nadmin"),
        ("username", "\u0430lice"),  # a Cyrillic "а" before Latin "lice": passes for "alice"
        ("password", "p" * 10_000),
        ("password", "lantern violin\x00 cactus moon"),
        ("password", "passwordpassword1"),
    ],
)
def test_hostile_registrations_are_refused_and_store_nothing(
    container: Container, mailer: MemoryMailer, field: str, value: str
) -> None:
    fields = {"email": "bob@example.com", "username": "bob", "password": PASSWORD, field: value}
    with pytest.raises(InputError):
        auth.register(container, **fields)
    assert _users(container) == 0 and mailer.sent == []


def test_sql_and_html_metacharacters_are_stored_as_text(container: Container) -> None:
    email = "o'brien+<script>alert(1)</script>@example.com"
    with pytest.raises(InputError):
        auth.register(container, email=email, username="obrien", password=PASSWORD)
    auth.register(container, email="o'brien+1=1--@example.com", username="Robert.DROP-TABLE_users", password=PASSWORD)
    user = registered(container, "o'brien+1=1--@example.com")
    assert user.email == "o'brien+1=1--@example.com" and user.username == "Robert.DROP-TABLE_users"
    sign_in(container, "o'brien+1=1--@example.com")
    auth.register(container, email="sasha@example.com", username="\u0430\u043b\u0438\u0441\u0430", password=PASSWORD)
    assert registered(container, "sasha@example.com").username == "алиса"  # one alphabet, not Latin: fine


def test_verification_link_expires_after_48_hours_and_resend_is_limited(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    auth.register(container, email="bob@example.com", username="bob", password=PASSWORD)
    user = registered(container, "bob@example.com")
    first = link_token(mailer, "verify")
    with pytest.raises(Throttled) as info:
        auth.resend_verification(container, user.id)
    assert 0 < info.value.retry_after <= 60 and len(mailer.sent) == 1
    clock.advance(seconds=60)
    auth.resend_verification(container, user.id)
    second = link_token(mailer, "verify")
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, first)  # the older link stopped working
    clock.advance(hours=48)
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, second)
    for forged in ["", "x" * 10_000, second[:-1] + "x", None]:
        with pytest.raises(TokenInvalid):
            auth.verify_email(container, forged)  # type: ignore[arg-type]


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
    owner resets the password. On a confirmed account two-factor stays (a reset proves only the mailbox)."""
    squatter = make_user(container, verified=verified)
    secret = enable_totp(container, squatter.id)
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


def test_change_password_needs_the_current_one_and_ends_other_sessions(
    container: Container, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    here, elsewhere = sign_in(container), sign_in(container)
    with pytest.raises(InputError, match="not right"):
        auth.change_password(container, alice.id, current_password="guess guess guess", new_password=OTHER_PASSWORD)
    assert "password_change_failed" in [e.event for e in audit.list_events(container, alice.id)]
    with pytest.raises(InputError, match=r"too weak|at least"):
        auth.change_password(container, alice.id, current_password=PASSWORD, new_password="password")
    auth.change_password(
        container, alice.id, current_password=PASSWORD, new_password=OTHER_PASSWORD, current_token=here
    )
    assert sessions.current_user(container, here) is not None
    assert sessions.current_user(container, elsewhere) is None
    assert mails_to(mailer, "alice@example.com") == ["finsync: your password was changed"]


def test_email_change_confirms_the_new_address_and_tells_the_old(container: Container, mailer: MemoryMailer) -> None:
    alice = make_user(container)
    with pytest.raises(InputError, match="not right"):
        auth.request_email_change(container, alice.id, password="nope nope nope nope", new_email="new@example.com")
    with pytest.raises(InputError):
        auth.request_email_change(container, alice.id, password=PASSWORD, new_email="a@b.c\r\nBcc: x@y.z")
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="new@example.com")
    assert mails_to(mailer, "new@example.com") == ["Verify your email for finsync"]
    assert mails_to(mailer, "alice@example.com") == ["finsync: email change requested"]
    sign_in(container, "alice@example.com")  # nothing changes until the new address confirms
    assert auth.verify_email(container, link_token(mailer, "verify", index=-2)).email == "new@example.com"
    sign_in(container, "new@example.com")
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice@example.com", password=PASSWORD)


def _account_state(c: Container) -> list[tuple[object, ...]]:
    """Every user's address and password, and every link: what an email change may not touch when refused."""
    with unit_of_work(c.engine) as session:
        people = session.execute(select(User.email, User.email_norm, User.password_hash)).all()
        links = session.execute(select(OneTimeToken.user_id, OneTimeToken.purpose, OneTimeToken.used_at)).all()
    return sorted(map(tuple, people), key=str) + sorted(map(tuple, links), key=str)


def test_an_email_change_to_a_taken_address_answers_as_a_free_one_and_tells_its_owner(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """Security bar B3: identity first, then one answer, so the form cannot probe which addresses are registered."""
    alice = make_user(container)
    bob = make_user(container, "bob")
    wrong = []
    for address in ("BOB@example.com", "free@example.com"):
        with pytest.raises(InputError) as info:
            auth.request_email_change(container, alice.id, password="nope nope nope nope", new_email=address)
        wrong.append(str(info.value))
    assert wrong == ["That password is not right."] * 2 and mailer.sent == []
    before = _account_state(container)

    assert auth.request_email_change(container, alice.id, password=PASSWORD, new_email="BOB@example.com") is None
    assert _account_state(container) == before  # no link, no address moved
    assert mails_to(mailer, "alice@example.com") == ["finsync: email change requested"]  # as for a free address
    (notice,) = [m for m in mailer.sent if m["To"] == "bob@example.com"]
    assert str(notice["Subject"]) == "finsync: someone tried to use your email address"
    assert "nothing was changed" in str(notice.get_content())
    assert not re.search(r"[?&=][A-Za-z0-9_-]{20,}", str(notice.get_content()))  # no link that changes anything
    events = [(e.event, e.detail) for e in audit.list_events(container, alice.id)]
    assert sorted(events) == [("email_change_requested", "")] + [("reauth_failed", "email change: wrong password")] * 2
    taken = [(e.event, e.detail) for e in audit.list_events(container, bob.id)]
    assert taken == [("email_change_email_taken", "notice mailed")]

    clock.advance(minutes=5)  # again within the hour: audited on bob's account, not mailed again
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="bob@example.com")
    assert len(mails_to(mailer, "bob@example.com")) == 1
    assert [e.detail for e in audit.list_events(container, bob.id)] == ["limited", "notice mailed"]
    assert sign_in(container, "bob@example.com") and sign_in(container, "alice@example.com")


def test_taking_the_account_back_ends_an_intruders_pending_email_change(
    container: Container, mailer: MemoryMailer
) -> None:
    """Security bar B2: an email change asked for with a stolen password dies with a reset or a password change."""
    alice = make_user(container)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="intruder@example.com")
    intruders = link_token(mailer, "verify", index=-2)
    auth.request_password_reset(container, email="alice@example.com")  # the owner notices and resets
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, intruders)
    assert sign_in(container, "alice@example.com", OTHER_PASSWORD)

    auth.request_email_change(container, alice.id, password=OTHER_PASSWORD, new_email="intruder@example.com")
    again = link_token(mailer, "verify", index=-2)
    auth.change_password(container, alice.id, current_password=OTHER_PASSWORD, new_password=PASSWORD)
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, again)


def test_delete_account_calls_the_hook_and_leaves_only_an_anonymous_row(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    bob = make_user(container, "bob")
    sign_in(container, ip="203.0.113.77")
    sign_in(container, "bob")
    called: list[uuid.UUID] = []
    with pytest.raises(InputError):
        auth.delete_account(container, alice.id, password="nope nope nope nope", remove_bank_items=called.append)
    assert called == []

    def broken(_: uuid.UUID) -> None:
        raise RuntimeError("bank unreachable")

    with pytest.raises(RuntimeError):
        auth.delete_account(container, alice.id, password=PASSWORD, remove_bank_items=broken)
    assert _users(container) == 2  # a failed unlink deletes nothing
    auth.delete_account(container, alice.id, password=PASSWORD, remove_bank_items=called.append)
    assert called == [alice.id]
    with unit_of_work(container.engine) as session:
        assert session.get(User, alice.id) is None
        assert session.execute(select(AuthSession).where(AuthSession.user_id == alice.id)).first() is None  # type: ignore[arg-type]
        rows = session.execute(select(AuditEvent).where(AuditEvent.user_id == alice.id)).scalars().all()  # type: ignore[arg-type]
    assert [r.event for r in rows if r.event == "account_deleted"] == ["account_deleted"]
    assert all(r.ip == "" and r.detail == "" for r in rows)
    assert all("alice" not in repr(r) and "203.0.113.77" not in repr(r) for r in rows)
    assert sessions.list_sessions(container, bob.id, None)  # bob is untouched


def test_with_two_factor_deleting_the_account_needs_a_valid_code_too(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """A stolen session plus the password is not enough (security bar D7): nothing is unlinked or deleted."""
    alice = make_user(container)
    secret = enable_totp(container, alice.id)
    here = sign_in_with_code(container, clock, "alice", secret)
    used = code_at(secret, clock())  # the code that sign-in just used
    clock.advance(seconds=30)
    called: list[uuid.UUID] = []
    for code, refusal in (
        (None, "6-digit code"),
        ("", "6-digit code"),
        ("000000", "code is not right"),
        (used, "code is not right"),  # a replay of an earlier step
        (code_at(secret, clock(), steps=-3), "code is not right"),  # ninety seconds old
    ):
        with pytest.raises(InputError, match=refusal):
            auth.delete_account(container, alice.id, password=PASSWORD, code=code, remove_bank_items=called.append)
    with pytest.raises(InputError, match="password is not right"):  # and the code does not stand in for it
        auth.delete_account(
            container, alice.id, password=OTHER_PASSWORD, code=code_at(secret, clock()), remove_bank_items=called.append
        )
    assert called == [] and _users(container) == 1 and sessions.current_user(container, here) is not None
    assert "account_deleted" not in [e.event for e in audit.list_events(container, alice.id)]

    auth.delete_account(
        container, alice.id, password=PASSWORD, code=code_at(secret, clock()), remove_bank_items=called.append
    )
    assert called == [alice.id] and _users(container) == 0 and sessions.current_user(container, here) is None


def test_sign_ups_from_one_address_are_limited_before_any_hashing_or_mail(
    container: Container, mailer: MemoryMailer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security bar C4/B8: a script cannot spend bcrypt time or send verification mail to strangers without end."""
    for i in range(10):
        auth.register(container, email=f"u{i}@example.com", username=f"user{i}", password=PASSWORD, ip="203.0.113.9")
    hashed: list[str] = []
    monkeypatch.setattr(passwords, "hash_password", lambda *a, **k: hashed.append("!") or "x")
    with pytest.raises(Throttled, match=r"Too many new accounts from your network\. Try again in 15 minutes\."):
        auth.register(container, email="u10@example.com", username="user10", password=PASSWORD, ip="203.0.113.9")
    assert hashed == [] and _users(container) == 10 and len(mailer.sent) == 10
    with unit_of_work(container.engine) as session:
        refused = session.execute(select(AuditEvent).where(AuditEvent.event == "ip_throttled")).scalars().all()
    assert [(e.ip, e.detail) for e in refused] == [("203.0.113.9", "registration")]
    monkeypatch.undo()
    auth.register(container, email="u11@example.com", username="user11", password=PASSWORD, ip="198.51.100.20")
    clock.advance(minutes=15)
    auth.register(container, email="u12@example.com", username="user12", password=PASSWORD, ip="203.0.113.9")
    assert _users(container) == 12
