"""Sign-in limits hold against guesses sent all at once (security bar C1, C2): each attempt's check and count are
one step, so parallel guesses queue and each sees the ones before it, on PostgreSQL (which has no BEGIN IMMEDIATE
to serialise them) as on SQLite."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlmodel import col

from models import AuditEvent
from services import auth, passwords, throttle
from services.container import Container
from services.db import unit_of_work
from services.errors import InvalidCredentials, Throttled
from tests.integration.auth_support import PASSWORD, all_at_once, fast_hashing, make_user  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")
GUESSES = 30


def _all_at_once(c: Container, n: int, password: Callable[[int], str], ip: Callable[[int], str]) -> Counter[str]:
    """``n`` sign-ins as alice released together; what each got."""

    def attempt(i: int) -> str:
        auth.begin_sign_in(c, login="alice", password=password(i), ip=ip(i))
        return "signed in"

    return all_at_once(n, attempt, (Throttled, InvalidCredentials))


def _failures(c: Container) -> Counter[str | None]:
    with unit_of_work(c.engine) as session:
        rows = session.execute(select(AuditEvent.detail).where(col(AuditEvent.event) == "sign_in_failed")).scalars()
        return Counter(rows)


def test_guesses_sent_together_from_one_address_get_ten_tries_not_more(container: Container) -> None:
    make_user(container, "alice")
    got = _all_at_once(container, GUESSES, lambda i: f"wrong guess number {i:03d} here", lambda _i: "203.0.113.9")
    assert got == Counter({"InvalidCredentials": throttle.IP_LIMIT, "Throttled": GUESSES - throttle.IP_LIMIT})


def test_guesses_sent_together_from_many_addresses_meet_the_account_pause_after_five(container: Container) -> None:
    make_user(container, "alice")
    got = _all_at_once(
        container, GUESSES, lambda i: f"wrong guess number {i:03d} here", lambda i: f"198.51.100.{i + 1}"
    )
    assert got == Counter({"InvalidCredentials": GUESSES})
    # only five were checked against the password; the rest met the pause
    assert _failures(container) == Counter({"wrong password": throttle.ACCOUNT_LIMIT, "locked": GUESSES - 5})


def test_the_right_password_is_refused_when_guesses_paused_the_account_while_it_was_checked(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is checked outside any transaction (bcrypt takes a quarter second): a pause that parallel
    guesses start meanwhile holds for it too, and it is not counted as a guess itself."""
    make_user(container, "alice")
    check = passwords.verify_password
    racing = threading.local()

    def slow_check(secret: str, *args: object, **kwargs: object) -> bool:
        if secret == PASSWORD and not getattr(racing, "on", False):
            racing.on = True  # while the right password is being checked, five wrong ones pause the account
            for n in range(throttle.ACCOUNT_LIMIT):
                with pytest.raises(InvalidCredentials):
                    auth.begin_sign_in(container, login="alice", password=f"wrong guess {n} here", ip=f"192.0.2.{n}")
        return check(secret, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(passwords, "verify_password", slow_check)
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.7")
    # its own pre-count made the fourth wrong guess the fifth failure; the fifth guess and it then met the pause
    assert _failures(container) == Counter({"wrong password": 4, "locked": 2})
    with unit_of_work(container.engine) as session:
        assert throttle.locked_until(session, throttle.account_key(_alice(container)), container.clock()) is not None


def _alice(c: Container) -> object:
    from services.users import find_by_login

    with unit_of_work(c.engine) as session:
        user = find_by_login(session, "alice")
        assert user is not None
        return user.id


def test_right_and_wrong_passwords_sent_together_all_get_an_answer(container: Container) -> None:
    """Every attempt takes the address's count before the account's, so none waits for another that waits for it:
    each gets an answer (no database error such as a deadlock), and the limits hold."""
    make_user(container, "alice")
    got = _all_at_once(
        container,
        GUESSES,
        lambda i: PASSWORD if i % 3 == 0 else f"wrong guess number {i:03d} here",
        lambda i: f"203.0.113.{i % 4}",
    )
    assert sum(got.values()) == GUESSES and set(got) <= {"signed in", "InvalidCredentials", "Throttled"}, got
