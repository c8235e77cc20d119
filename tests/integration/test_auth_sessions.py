"""Sessions: server-side rows, hashed tokens, timeouts, sign-out, and one user never touching another's (D1-D4, D6, D8, F1)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models import AuditEvent, AuthSession
from services import admin, audit, sessions
from services.container import Container
from services.db import unit_of_work
from services.errors import NotFound, PermissionDenied
from services.keys import token_hash
from tests.factories import FakeClock
from tests.integration.auth_support import fast_hashing, make_admin, make_user, sign_in  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")


def _rows(c: Container) -> list[AuthSession]:
    with unit_of_work(c.engine) as session:
        return list(session.execute(select(AuthSession)).scalars())


def test_only_the_hash_of_a_random_token_is_stored(container: Container) -> None:
    make_user(container)
    token = sign_in(container)
    (row,) = _rows(container)
    assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert "." not in token and "alice" not in token  # a random reference, not a JWT of the username
    assert row.ip == "198.51.100.7" and row.user_agent == "pytest"


def test_sign_out_kills_the_token_for_good(container: Container) -> None:
    make_user(container)
    token = sign_in(container)
    sessions.sign_out(container, token)
    assert sessions.current_user(container, token) is None
    sessions.sign_out(container, token)  # twice is harmless
    assert [e.event for e in audit.list_events(container, _rows(container)[0].user_id)].count("sign_out") == 1


def test_idle_timeout_30_minutes(container: Container, clock: FakeClock) -> None:
    make_user(container)
    token = sign_in(container)
    clock.advance(minutes=29, seconds=59)
    assert sessions.current_user(container, token) is not None  # activity moves the idle deadline
    clock.advance(minutes=29, seconds=59)
    assert sessions.current_user(container, token) is not None
    clock.advance(minutes=30, seconds=1)
    assert sessions.current_user(container, token) is None


def test_a_page_refreshing_itself_on_a_timer_does_not_keep_an_idle_session_alive(
    container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transactions and Accounts look every 20 s whether the bot changed anything, and check the session as they
    do: a tab left open there, untouched, still signs out after 30 idle minutes (it stayed signed in for 12 h)."""
    from pages.ui import session as ui_session

    user = make_user(container)
    token = sign_in(container)
    monkeypatch.setattr(ui_session, "container", lambda: container)
    monkeypatch.setattr(ui_session, "read_cookie", lambda: token)
    for _ in range(89):  # 29 min 40 s of polls, every 20 s
        clock.advance(seconds=20)
        ui_session.still_signed_in(user.id)  # live: no rerun (outside a script run, one would raise)
    clock.advance(seconds=21)
    assert sessions.current_user(container, token) is None  # 30 min 1 s after the last thing the user did


def test_a_page_load_is_not_refused_when_the_bot_writes_while_its_session_is_read(
    container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync (another connection) commits between reading the session and noting the activity: the page still
    loads, and the idle deadline still moves (SQLite would refuse the read transaction's late write)."""
    make_user(container)
    token = sign_in(container)
    clock.advance(minutes=20)
    real = sessions._live

    def meanwhile(row: AuthSession, c: Container, now: object) -> bool:
        with unit_of_work(container.engine) as other:  # the bot's write, committed
            other.add(AuditEvent(event="sync_written", user_id=None, result="ok", at=clock()))
        return real(row, c, now)  # type: ignore[arg-type]

    monkeypatch.setattr(sessions, "_live", meanwhile)
    assert sessions.current_user(container, token) is not None
    monkeypatch.undo()
    clock.advance(minutes=29)  # 49 minutes after sign-in, 29 after that page load: still signed in
    assert sessions.current_user(container, token) is not None


def test_absolute_timeout_12_hours_even_when_active(container: Container, clock: FakeClock) -> None:
    make_user(container)
    token = sign_in(container)
    for _ in range(12 * 3 - 1):
        clock.advance(minutes=20)
        assert sessions.current_user(container, token) is not None
    clock.advance(minutes=20)
    assert sessions.current_user(container, token) is None


@pytest.mark.parametrize("forged", [None, "", "x" * 10_000, "' OR 1=1 --", "\x00", 42])
def test_forged_tokens_get_nobody(container: Container, forged: object) -> None:
    make_user(container)
    sign_in(container)
    assert sessions.current_user(container, forged) is None  # type: ignore[arg-type]


def test_disabled_user_loses_live_sessions_at_once(container: Container) -> None:
    alice = make_user(container)
    root = make_admin(container)
    token = sign_in(container)
    admin.set_disabled(container, root.id, alice.id, True)
    assert sessions.current_user(container, token) is None
    admin.set_disabled(container, root.id, alice.id, False)
    assert sessions.current_user(container, token) is None  # re-enabling does not revive old sessions
    assert sign_in(container)


def test_list_and_revoke_own_sessions(container: Container) -> None:
    alice = make_user(container)
    here, phone, laptop = sign_in(container), sign_in(container), sign_in(container)
    listed = sessions.list_sessions(container, alice.id, here)
    assert len(listed) == 3 and [s.current for s in listed].count(True) == 1
    phone_id = next(s.id for s in listed if not s.current)
    sessions.revoke_session(container, alice.id, phone_id)
    assert len(sessions.list_sessions(container, alice.id, here)) == 2
    assert sessions.revoke_other_sessions(container, alice.id, here) == 1
    assert sessions.current_user(container, here) is not None
    assert sessions.current_user(container, phone) is None and sessions.current_user(container, laptop) is None


def test_user_b_can_never_touch_user_a(container: Container) -> None:
    alice, bob = make_user(container), make_user(container, "bob")
    a_token, b_token = sign_in(container), sign_in(container, "bob")
    a_session = sessions.list_sessions(container, alice.id, a_token)[0].id
    with pytest.raises(NotFound):
        sessions.revoke_session(container, bob.id, a_session)
    with pytest.raises(NotFound):
        sessions.revoke_session(container, bob.id, uuid.uuid4())
    assert sessions.revoke_other_sessions(container, bob.id, a_token) == 1  # only bob's own session ends
    assert sessions.current_user(container, a_token) is not None
    assert sessions.current_user(container, b_token) is None
    assert sessions.list_sessions(container, bob.id, a_token) == []
    assert {e.event for e in audit.list_events(container, bob.id)} == {"sign_in_ok", "session_revoked", "access_denied"}
    with unit_of_work(container.engine) as session:
        alice_rows = session.execute(select(AuditEvent).where(AuditEvent.user_id == alice.id)).scalars().all()  # type: ignore[arg-type]
    assert alice_rows and all(e.event == "sign_in_ok" for e in audit.list_events(container, alice.id))


def test_non_admins_are_refused_every_admin_function(container: Container) -> None:
    alice, bob = make_user(container), make_user(container, "bob")
    calls = [
        lambda: admin.list_users(container, alice.id),
        lambda: admin.unlock_user(container, alice.id, bob.id),
        lambda: admin.force_sign_out(container, alice.id, bob.id),
        lambda: admin.set_disabled(container, alice.id, bob.id, True),
        lambda: admin.audit_log(container, alice.id),
        lambda: admin.outbox(container, alice.id),
        lambda: admin.list_users(container, uuid.uuid4()),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()


@pytest.mark.parametrize("ending", ["sign out everywhere else", "new password", "admin force sign-out", "2FA on"])
def test_a_sign_in_still_under_way_does_not_outlive_sign_out_everywhere(container: Container, ending: str) -> None:
    """Someone who knows the password keeps a hand-off ticket (60 s) back, unexchanged: when the owner signs out
    everywhere else, changes the password, an admin forces a sign-out or two-factor goes on, it must not still
    open a fresh session."""
    from services import account, auth, totp
    from services.errors import TokenInvalid
    from tests.integration.auth_support import PASSWORD, code_at, session_of

    alice = make_user(container)
    owner = sign_in(container)
    held = auth.begin_sign_in(container, login="alice", password=PASSWORD).ticket
    assert held
    if ending == "sign out everywhere else":
        sessions.revoke_other_sessions(container, alice.id, owner)
    elif ending == "new password":
        account.change_password(
            container,
            alice.id,
            current_password=PASSWORD,
            new_password="a different passphrase 8812",
            current_token=owner,
        )
    elif ending == "admin force sign-out":
        root = make_admin(container)
        admin.force_sign_out(container, root.id, alice.id)
    else:
        started = totp.start_totp_enrolment(container, alice.id, session_id=session_of(container, owner))
        code = code_at(started.secret, container.clock())
        totp.confirm_totp(container, alice.id, code=code, password=PASSWORD, current_token=owner)
    with pytest.raises(TokenInvalid):
        auth.redeem_ticket(container, ticket=held)
    assert (sessions.current_user(container, owner) is None) == (ending == "admin force sign-out")  # theirs stays
