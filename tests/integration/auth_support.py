"""Helpers for the auth tests: cheap bcrypt, users, sign-in, links out of emails, TOTP codes."""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime

import pyotp
import pytest
from sqlalchemy import func, select

from models import User
from services import auth, passwords, sessions, totp
from services.container import Container
from services.db import unit_of_work
from services.mailer import MemoryMailer
from services.users import UserPublic, create_user, find_by_email, fold
from tests.factories import STRONG_PASSWORD, FakeClock

PASSWORD = STRONG_PASSWORD
OTHER_PASSWORD = "copper giraffe lantern violin 77"
# zxcvbn spends seconds on some 100-character passwords full of look-alike symbols (6 s on a 2-core test machine)
SLOW_TO_SCORE = ("4@8({[<369!|7$5+%201" * 5)[:100]
IP = "198.51.100.7"
EMOJI = "🦊🌵🎻🧲🪁🛶🧊🦉🌋🎲🧵🪐🦔🍄🛸🐙🎺🧭🪴🦩🍉🚲🪕🦜🌶️🧤🎯🪶🐳🧁🛼🌈🧿🐝🥁🪩🦕🌻🎹🍋🐚🪃🥨🦚🧃🗿🪸🦑🎠🌵"


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """bcrypt cost 4 instead of 12 (one test in test_passwords keeps 12 and checks the prefix)."""
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)
    yield


def make_user(
    c: Container,
    name: str = "alice",
    *,
    password: str = PASSWORD,
    verified: bool = True,
    role: str = "user",
) -> UserPublic:
    with unit_of_work(c.engine) as session:
        user = create_user(
            session,
            email=f"{name}@example.com",
            username=name,
            password=password,
            pepper=c.pepper,
            role=role,
            email_verified=verified,
        )
        return UserPublic.of(user)


def registered(c: Container, email: str) -> UserPublic:
    """The account registered under ``email`` (``auth.register`` answers without saying)."""
    with unit_of_work(c.engine) as session:
        user = find_by_email(session, fold(email))
        assert user is not None, email
        return UserPublic.of(user)


def sign_in(c: Container, login: str = "alice", password: str = PASSWORD, *, ip: str = IP) -> str:
    """Password (no 2FA) to a raw session token."""
    step = auth.begin_sign_in(c, login=login, password=password, ip=ip)
    assert step.kind == "ticket" and step.ticket
    return auth.redeem_ticket(c, ticket=step.ticket, ip=ip, user_agent="pytest")


def link_token(mailer: MemoryMailer, param: str, index: int = -1) -> str:
    """The token of the ``?param=`` link in a sent email (the last one by default)."""
    body = str(mailer.sent[index].get_content())
    match = re.search(rf"/\?{param}=([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(1)


def mails_to(mailer: MemoryMailer, address: str) -> list[str]:
    return [str(m["Subject"]) for m in mailer.sent if m["To"] == address]


def code_at(secret: str, when: datetime, steps: int = 0) -> str:
    return str(pyotp.TOTP(secret).at(int(when.timestamp()) + 30 * steps))


def enable_totp(c: Container, user_id: uuid.UUID, *, current_token: str | None = None) -> str:
    """Turn two-factor on as Settings does (enrol, confirm with the current code); returns the secret.

    Every session but ``current_token`` (the one Settings was opened in) ends.
    """
    enrolment = totp.start_totp_enrolment(c, user_id, session_id=session_of(c, current_token))
    code = code_at(enrolment.secret, c.clock())
    totp.confirm_totp(c, user_id, code=code, password=PASSWORD, current_token=current_token)
    return enrolment.secret


def session_of(c: Container, token: str | None) -> uuid.UUID | None:
    """The id of the live session behind ``token`` (None for none)."""
    view = sessions.current_user(c, token) if token else None
    return view.session_id if view is not None else None


def make_admin(c: Container, name: str = "root", *, verified: bool = True) -> UserPublic:
    """An admin with two-factor on, as the admin page and services require (security bar F3)."""
    admin = make_user(c, name, role="admin", verified=verified)
    enable_totp(c, admin.id)
    return replace(admin, totp_enabled=True)


def sign_in_with_code(c: Container, clock: FakeClock, login: str, secret: str, password: str = PASSWORD) -> str:
    """Password, then a TOTP code of the next 30-second step (so it is never a replay), to a raw session token."""
    clock.advance(seconds=30)
    step = auth.begin_sign_in(c, login=login, password=password, ip=IP)
    assert step.kind == "totp" and step.challenge
    ticket = auth.complete_totp(c, challenge=step.challenge, code=code_at(secret, clock()), ip=IP)
    return auth.redeem_ticket(c, ticket=ticket, ip=IP, user_agent="pytest")


def user_row(c: Container, user_id: uuid.UUID) -> User:
    with unit_of_work(c.engine) as session:
        row = session.execute(select(User).where(User.id == user_id)).scalar_one()  # type: ignore[arg-type]
        session.expunge(row)
        return row


def count_users(c: Container) -> int:
    with unit_of_work(c.engine) as session:
        return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def all_at_once(n: int, act: Callable[[int], str], refusals: tuple[type[Exception], ...]) -> Counter[str]:
    """``act(i)`` for each ``i`` in ``range(n)``, released together on ``n`` threads; how many got each outcome: what
    ``act`` returned, the class name of one of ``refusals``, or ``error: <class>`` for anything else (a database
    error is counted, so the test says which)."""
    start, lock, got = threading.Barrier(n), threading.Lock(), Counter[str]()

    def attempt(i: int) -> None:
        start.wait()
        try:
            outcome = act(i)
        except refusals as exc:
            outcome = type(exc).__name__
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}"
        with lock:
            got[outcome] += 1

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got
