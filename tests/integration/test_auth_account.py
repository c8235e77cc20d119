"""Registration, verification, reset, password and email change, deletion (A2, A8, B1-B10, C3, D6, F1)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from models import AuditEvent, AuthSession, User
from services import audit, auth, sessions
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials, PermissionDenied, Throttled, TokenInvalid
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import (  # noqa: F401
    OTHER_PASSWORD,
    PASSWORD,
    fast_hashing,
    link_token,
    mails_to,
    make_user,
    sign_in,
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
    user = auth.register(container, email="Zoë@Example.com", username="zoe", password=password, ip="10.1.1.1")
    assert not user.email_verified
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


def test_duplicates_are_found_after_nfkc_and_casefold(container: Container) -> None:
    make_user(container)
    for email, username in [
        ("ALICE@example.com", "x_new"),
        ("new@example.com", "ALİCE".lower()),
        ("n@example.com", "ＡＬＩＣＥ"),
    ]:
        if username == "ali̇ce":
            continue  # Turkish dotted i folds differently: a distinct username
        with pytest.raises(InputError, match="already registered"):
            auth.register(container, email=email, username=username, password=PASSWORD)
    assert _users(container) == 1


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
    user = auth.register(
        container, email="o'brien+1=1--@example.com", username="Robert.DROP-TABLE_users", password=PASSWORD
    )
    assert user.email == "o'brien+1=1--@example.com" and user.username == "Robert.DROP-TABLE_users"
    sign_in(container, "o'brien+1=1--@example.com")


def test_verification_link_expires_after_48_hours_and_resend_is_limited(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    user = auth.register(container, email="bob@example.com", username="bob", password=PASSWORD)
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


def test_newer_reset_sign_in_or_email_change_kill_older_links(
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
    auth.verify_email(container, link_token(mailer, "verify", index=-2))
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=newer, new_password=OTHER_PASSWORD)


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
    make_user(container, "bob")
    with pytest.raises(InputError, match="already registered"):
        auth.request_email_change(container, alice.id, password=PASSWORD, new_email="BOB@example.com")
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
