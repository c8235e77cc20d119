"""Changing an account: password (needs the current one), email address (confirmed by the new one, told to the old),
deletion (password and two-factor code, only an anonymous row left) (A8, B2, B3, B6, B7, D6, D7, F1)."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from models import AuditEvent, AuthSession, OneTimeToken, User
from services import audit, auth, credentials, passwords, sessions
from services.container import Container
from services.db import unit_of_work
from services.errors import FinsyncError, InputError, InvalidCredentials, Throttled, TokenInvalid
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import (
    OTHER_PASSWORD,
    PASSWORD,
    SLOW_TO_SCORE,
    code_at,
    enable_totp,
    fast_hashing,  # noqa: F401 - the fixture pytestmark names
    link_token,
    mails_to,
    make_user,
    sign_in,
    sign_in_with_code,
)
from tests.integration.auth_support import count_users as _users

pytestmark = pytest.mark.usefixtures("fast_hashing")


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
    with pytest.raises(InputError, match="the password you have now"):  # nothing changes, nobody is signed out
        auth.change_password(container, alice.id, current_password=PASSWORD, new_password=PASSWORD, current_token=here)
    assert sessions.current_user(container, elsewhere) is not None and mailer.sent == []
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


@pytest.mark.parametrize("taken", [False, True], ids=["free-address", "taken-address"])
def test_email_changes_are_one_a_minute_so_no_one_mails_addresses_of_their_choice_in_bulk(
    container: Container, clock: FakeClock, mailer: MemoryMailer, taken: bool
) -> None:
    """Each request mails a link (or a notice) to an address of the requester's choice and a notice to their own:
    a second within the minute is refused and mails nothing, whether the address is free or taken (the same answer
    both ways, bar B3)."""
    alice = make_user(container)
    make_user(container, "bob")
    target = "bob@example.com" if taken else "new@example.com"
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email=target)
    sent = len(mailer.sent)
    for seconds in (1, 58):
        clock.advance(seconds=seconds)
        with pytest.raises(Throttled, match="again in a minute"):
            auth.request_email_change(container, alice.id, password=PASSWORD, new_email="other@example.com")
    assert len(mailer.sent) == sent and mails_to(mailer, "other@example.com") == []
    clock.advance(seconds=2)  # 61 s after the one that went out
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="other@example.com")
    assert mails_to(mailer, "other@example.com") == ["Verify your email for finsync"]


def _people(c: Container) -> list[tuple[object, ...]]:
    """Every user's address and password."""
    with unit_of_work(c.engine) as session:
        people = session.execute(select(User.email, User.email_norm, User.password_hash)).all()
    return sorted(map(tuple, people), key=str)


def _account_state(c: Container) -> list[tuple[object, ...]]:
    """Every user's address and password, and every link: what an email change may not touch when refused."""
    with unit_of_work(c.engine) as session:
        links = session.execute(select(OneTimeToken.user_id, OneTimeToken.purpose, OneTimeToken.used_at)).all()
    return _people(c) + sorted(map(tuple, links), key=str)


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
    assert _people(container) == before[: len(_people(container))]  # no address moved
    assert not [m for m in mailer.sent if "Verify" in str(m["Subject"])]  # and no link mailed anywhere
    waiting = auth.pending_email_change(container, alice.id)  # Settings shows it waiting, as for a free address
    assert waiting is not None and waiting.new_email == "BOB@example.com"
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


def test_a_pending_email_change_shows_until_it_is_confirmed_expires_or_is_cancelled(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """Settings says which address the account waits to move to; cancelling it kills the link that was sent."""
    alice, bob = make_user(container), make_user(container, "bob")
    assert auth.pending_email_change(container, alice.id) is None
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="new@example.com")
    sent = link_token(mailer, "verify", index=-2)
    waiting = auth.pending_email_change(container, alice.id)
    assert waiting is not None and waiting.new_email == "new@example.com"
    assert auth.pending_email_change(container, bob.id) is None  # hers alone

    assert auth.cancel_email_change(container, alice.id, ip="203.0.113.9") is True
    assert auth.pending_email_change(container, alice.id) is None
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, sent)
    assert auth.cancel_email_change(container, alice.id) is False  # nothing left to cancel: nothing recorded
    cancelled = [(e.event, e.ip) for e in audit.list_events(container, alice.id) if e.event == "email_change_cancelled"]
    assert cancelled == [("email_change_cancelled", "203.0.113.9")]
    assert sign_in(container, "alice@example.com")  # the address never moved

    clock.advance(minutes=1)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="later@example.com")
    clock.advance(hours=47, minutes=59)
    assert auth.pending_email_change(container, alice.id) is not None
    clock.advance(minutes=1)
    assert auth.pending_email_change(container, alice.id) is None  # the link expired: nothing waits any more

    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="last@example.com")
    auth.verify_email(container, link_token(mailer, "verify", index=-2))
    assert auth.pending_email_change(container, alice.id) is None  # done: the address is the new one
    assert sign_in(container, "last@example.com")


def test_taking_the_account_back_ends_an_intruders_pending_email_change(
    container: Container, clock: FakeClock, mailer: MemoryMailer
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

    clock.advance(minutes=1)
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


@pytest.mark.parametrize("how", ["change", "reset"])
def test_new_passwords_are_scored_for_an_account_only_within_its_budget(
    container: Container, mailer: MemoryMailer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Security bar 15.2.2: a refused new password leaves the form (or the reset link) ready for the next, and scoring
    one takes seconds for some, so anyone who registered could keep the server's CPUs busy from Settings or a reset
    link of their own. Each account has a budget of passwords scored; once it is spent, the next is refused first."""
    alice = make_user(container)
    here = sign_in(container)
    auth.request_password_reset(container, email="alice@example.com")
    link = link_token(mailer, "reset")
    real, scored = passwords.zxcvbn, []

    def scoring(password: str, *args: object, **kwargs: object) -> object:
        scored.append(password)
        return real(password, *args, **kwargs)  # type: ignore[arg-type]

    def new_password(password: str) -> None:
        if how == "change":
            auth.change_password(container, alice.id, current_password=PASSWORD, new_password=password,
                                 current_token=here)  # fmt: skip
        else:
            auth.reset_password(container, token=link, new_password=password)

    monkeypatch.setattr(passwords, "zxcvbn", scoring)
    for _ in range(credentials.PASSWORD_TRIES):
        with pytest.raises(InputError, match="too weak"):
            new_password("passwordpassword1")
    assert len(scored) == credentials.PASSWORD_TRIES
    with pytest.raises(Throttled, match=r"You tried many new passwords in a short time\. Try again in 15 minutes\."):
        new_password(SLOW_TO_SCORE)
    assert SLOW_TO_SCORE not in scored
    clock.advance(minutes=15)  # within the reset link's 30 minutes
    new_password(OTHER_PASSWORD)
    sign_in(container, "alice", OTHER_PASSWORD)


def test_someone_with_a_signed_in_browser_cannot_spend_the_budget_that_keeps_the_owner_from_resetting(
    container: Container, mailer: MemoryMailer
) -> None:
    """A browser left signed in (or a stolen session cookie) without the password: its holder sent the Settings form
    with any current password and any new one, and each send spent the account's budget of new passwords scored,
    though none was scored. The owner's reset, the one way to end that session, then said "You tried many new
    passwords in a short time" for as long as the holder kept sending. A new password is counted once it is scored,
    and the reset link's tries are the mailbox owner's alone."""
    alice = make_user(container)
    intruder = sign_in(container)
    for _ in range(credentials.PASSWORD_TRIES + 1):
        with pytest.raises(FinsyncError):  # a wrong password, then the pause it leads to
            auth.change_password(container, alice.id, current_password="a guess at the password 123",
                                 new_password="passwordpassword1", current_token=intruder)  # fmt: skip
    auth.request_password_reset(container, email="alice@example.com")
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    assert sessions.current_user(container, intruder) is None
    sign_in(container, "alice", OTHER_PASSWORD)


def test_someone_who_knows_the_password_cannot_spend_the_budget_of_the_owners_reset_link(
    container: Container, mailer: MemoryMailer
) -> None:
    """Someone who learnt the password and keeps a session sends weak new passwords from Settings: that spends the
    budget of Settings, not the one of the reset link with which the owner takes the account back."""
    alice = make_user(container)
    intruder = sign_in(container)
    for _ in range(credentials.PASSWORD_TRIES):
        with pytest.raises(InputError, match="too weak"):
            auth.change_password(container, alice.id, current_password=PASSWORD, new_password="passwordpassword1",
                                 current_token=intruder)  # fmt: skip
    with pytest.raises(Throttled):
        auth.change_password(container, alice.id, current_password=PASSWORD, new_password="passwordpassword1",
                             current_token=intruder)  # fmt: skip
    auth.request_password_reset(container, email="alice@example.com")
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    assert sessions.current_user(container, intruder) is None
    sign_in(container, "alice", OTHER_PASSWORD)
