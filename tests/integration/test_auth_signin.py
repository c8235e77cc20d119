"""Sign-in as an attacker sees it: one message, the same bcrypt work, locks that pass, IP limits (A7, B3, C1-C3, C5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import bcrypt
import pytest
from sqlalchemy import select, update

from models import AuditEvent, ThrottleCounter, User
from services import admin, auth, passwords, sessions, throttle
from services.container import Container, build_container
from services.db import unit_of_work
from services.errors import InvalidCredentials, SignInEnded, Throttled, TokenInvalid
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import (
    IP,
    OTHER_PASSWORD,
    PASSWORD,
    fast_hashing,  # noqa: F401
    link_token,
    mails_to,
    make_admin,
    make_user,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")
GENERIC = "Sign-in failed: check your details and try again."


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", counting)
    yield calls


def _fail(c: Container, login: str, password: str = "wrong wrong wrong wrong", ip: str = IP) -> str:
    with pytest.raises(InvalidCredentials) as info:
        auth.begin_sign_in(c, login=login, password=password, ip=ip)
    return str(info.value)


def _events(c: Container, event: str) -> list[AuditEvent]:
    with unit_of_work(c.engine) as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.event == event)).scalars())  # type: ignore[arg-type]


def test_sign_in_by_email_or_username_gives_a_fresh_token_each_time(container: Container) -> None:
    make_user(container)
    first = sign_in(container, "ALICE@example.com")
    second = sign_in(container, "Alice")
    assert first != second and len(first) >= 43  # 256-bit tokens, a new one per sign-in (D2)
    assert sessions.current_user(container, first) is not None
    assert sessions.current_user(container, second) is not None


def test_every_failure_has_one_message_and_one_bcrypt_verify(
    container: Container, clock: FakeClock, checkpw_calls: list[int]
) -> None:
    make_user(container)
    bob = make_user(container, "bob")
    make_user(container, "carol")
    admin_user = make_admin(container)
    admin.set_disabled(container, admin_user.id, bob.id, True)
    for _ in range(5):
        _fail(container, "carol", ip="203.0.113.9")
    checkpw_calls.clear()
    messages = {
        "wrong password": _fail(container, "alice"),
        "unknown user": _fail(container, "nobody@example.com"),
        "disabled, right password": _fail(container, "bob", PASSWORD),
        "locked, right password": _fail(container, "carol", PASSWORD),
    }
    assert set(messages.values()) == {GENERIC}
    assert len(checkpw_calls) == 4  # the same bcrypt work on every path: timing does not tell them apart


def test_five_failures_lock_for_15_minutes_then_doubling_capped_at_24h(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    alice = make_user(container)
    for _ in range(5):
        _fail(container, "alice", ip=f"192.0.2.{_}")
    assert len(mails_to(mailer, "alice@example.com")) == 1  # one email per lock
    assert len(_events(container, "account_locked")) == 1
    clock.advance(minutes=14, seconds=59)
    _fail(container, "alice", PASSWORD)  # right password during the lock: still refused, same message
    _fail(container, "alice")  # failures during a lock do not extend it or send more mail
    assert len(mails_to(mailer, "alice@example.com")) == 1
    clock.advance(seconds=1)
    assert sign_in(container)  # the lock has passed by itself: no permanent lockout
    lengths = []
    for _ in range(9):
        for _ in range(5):
            _fail(container, "alice")
        with unit_of_work(container.engine) as session:
            row = session.get(ThrottleCounter, throttle.account_key(alice.id))
            assert row is not None and row.locked_until is not None
            lengths.append(round((row.locked_until - clock()).total_seconds() / 60))
        clock.now = row.locked_until
    # the success above reset the back-off; from there each repeat lock doubles, capped at 24 hours
    assert lengths == [15, 30, 60, 120, 240, 480, 960, 24 * 60, 24 * 60]
    assert len(mails_to(mailer, "alice@example.com")) == 10


# What an attacker types to make one account look like five: case, the email instead of the username, full-width
# letters (NFKC: "ａｌｉｃｅ"), spaces around it, the full-width "＠" in the address.
LOGIN_VARIANTS = ["ALICE", "alice@EXAMPLE.com", "\uff41\uff4c\uff49\uff43\uff45", "  Alice  ", "Alice\uff20Example.COM"]


def test_spelling_the_login_five_ways_from_five_addresses_still_pauses_the_one_account(
    container: Container, mailer: MemoryMailer
) -> None:
    """Bar C1 against an attacker who rotates both the spelling of the login and the client address: the pause is
    the account's, whatever the login looked like, and the right password in yet another spelling is refused."""
    make_user(container)
    for i, login in enumerate(LOGIN_VARIANTS):
        _fail(container, login, ip=f"192.0.2.{i + 1}")
    assert len(_events(container, "account_locked")) == 1 and len(mails_to(mailer, "alice@example.com")) == 1
    assert _fail(container, "Alice@Example.COM", PASSWORD, ip="198.51.100.99") == GENERIC


def test_a_burst_across_the_end_of_a_fixed_window_still_locks(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """The window slides: 1 failure, 3 at 14:58 and 4 at 15:00 are 7 within 2 s, and lock the account."""
    make_user(container)
    start = clock()
    _fail(container, "alice")
    clock.now = start + timedelta(minutes=14, seconds=58)
    for _ in range(3):
        _fail(container, "alice")
    clock.now = start + timedelta(minutes=15)
    for _ in range(4):
        _fail(container, "alice")
    assert len(mails_to(mailer, "alice@example.com")) == 1 and len(_events(container, "account_locked")) == 1
    _fail(container, "alice", PASSWORD)  # locked: the right password is refused with the same message


def test_the_ip_limit_slides_across_the_end_of_a_fixed_window(container: Container, clock: FakeClock) -> None:
    make_user(container)
    start = clock()
    _fail(container, "nobody0@example.com", ip="203.0.113.52")
    clock.now = start + timedelta(minutes=14, seconds=58)
    for n in range(9):
        _fail(container, f"nobody{n}@example.com", ip="203.0.113.52")
    clock.now = start + timedelta(minutes=15)
    _fail(container, "alice", ip="203.0.113.52")  # the first failure has left the window: one more, not ten
    with pytest.raises(Throttled) as info:
        auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.52")
    assert info.value.retry_after == 14 * 60 + 58


def test_a_hundred_failures_in_a_row_stop_sign_in_until_a_reset(
    container: Container, clock: FakeClock, mailer: MemoryMailer
) -> None:
    """NIST's cap: locks that pass by themselves cannot give a guesser more than 100 tries in a row."""
    alice = make_user(container)
    for n in range(throttle.HARD_STOP):
        _fail(container, "alice", ip=f"198.51.100.{n % 250}")
        with unit_of_work(container.engine) as session:
            row = session.get(ThrottleCounter, throttle.account_key(alice.id))
            assert (row is not None and row.locked_until is not None) or n % 5 != 4
            if n < throttle.HARD_STOP - 1 and row is not None and row.locked_until is not None:
                clock.now = max(clock.now, row.locked_until)  # wait each pause out, as a patient guesser would
    clock.advance(days=365)
    _fail(container, "alice", PASSWORD)  # a year later, the right password still does not open it
    bodies = [m.get_content() for m in mailer.sent if m["To"] == "alice@example.com"]
    [mail] = [b for b in bodies if "100 failed sign-in attempts in a row" in b]
    assert "stopped until you reset your password" in mail
    assert any("until reset" in e.detail for e in _events(container, "account_locked"))
    root = make_admin(container)
    listed = {r.username: r.stopped for r in admin.list_users(container, root.id)}
    assert listed == {"alice": True, "root": False}  # the admin page says "stopped until reset", not a date
    auth.request_password_reset(container, email="alice@example.com")
    auth.reset_password(container, token=link_token(mailer, "reset"), new_password=OTHER_PASSWORD)
    assert sign_in(container, "alice", OTHER_PASSWORD)  # the reset lifts the stop


def test_ip_limit_refuses_before_any_bcrypt_and_survives_a_restart(
    container: Container, clock: FakeClock, checkpw_calls: list[int], mailer: MemoryMailer
) -> None:
    """Security bar C2: ten failures from one address, then the eleventh attempt is refused."""
    make_user(container)
    for n in range(10):
        _fail(container, f"user{n}@example.com", ip="203.0.113.50")
    checkpw_calls.clear()
    restarted = build_container(container.settings, engine=container.engine, mailer=mailer, clock=clock)
    with pytest.raises(Throttled) as info:
        auth.begin_sign_in(restarted, login="alice", password=PASSWORD, ip="203.0.113.50")
    assert 0 < info.value.retry_after <= 15 * 60 and checkpw_calls == []
    assert _events(container, "ip_throttled")
    assert sign_in(container, ip="203.0.113.51")  # another address is not affected
    clock.advance(minutes=15)
    assert sign_in(container, ip="203.0.113.50")


def _audit_rows(c: Container) -> list[tuple[str, str, str]]:
    with unit_of_work(c.engine) as session:
        rows = session.execute(select(AuditEvent.event, AuditEvent.ip, AuditEvent.detail).order_by(AuditEvent.at))
        return [(e, i, d) for e, i, d in rows]


def test_a_flood_of_sign_ins_past_the_address_limit_adds_no_audit_row(container: Container, clock: FakeClock) -> None:
    """The audit table is append-only: the pause is recorded once, by the failure that begins it, and the refusals in
    it (password step or code step, known account or not) are answered from the counter and write nothing."""
    make_user(container)
    first = clock()
    for n in range(throttle.IP_LIMIT):
        clock.advance(seconds=1)
        _fail(container, f"user{n}@example.com", ip="203.0.113.50")
    began = clock()
    before = _audit_rows(container)
    assert [r for r in before if r[0] == "ip_throttled"] == [("ip_throttled", "203.0.113.50", "sign-in")]
    assert [e.at for e in _events(container, "ip_throttled")] == [began]  # when the pause began
    for n in range(30):
        clock.advance(seconds=1)
        with pytest.raises(Throttled):
            auth.begin_sign_in(container, login=("alice", "nobody@example.com")[n % 2], password=PASSWORD,
                               ip="203.0.113.50")  # fmt: skip
        with pytest.raises(Throttled):
            auth.complete_totp(container, challenge="c" * 43, code="123456", ip="203.0.113.50")
    assert _audit_rows(container) == before
    clock.now = first + timedelta(seconds=1) + throttle.IP_WINDOW
    _fail(container, "nobody@example.com", ip="203.0.113.50")  # the oldest failure has left the window: one more try
    assert len(_events(container, "ip_throttled")) == 2  # and it fills the budget again: a second pause, said once


def test_dead_code_step_posts_that_fill_the_address_budget_record_the_pause_once(container: Container) -> None:
    """The code step shares the address's budget: the dead challenge that fills it records the pause, and the
    refusals after it write nothing."""
    for _ in range(throttle.IP_LIMIT):
        with pytest.raises(SignInEnded):
            auth.complete_totp(container, challenge="c" * 43, code="123456", ip="203.0.113.60")
    before = _audit_rows(container)
    assert before == [("ip_throttled", "203.0.113.60", "sign-in")]
    for _ in range(20):
        with pytest.raises(Throttled):
            auth.complete_totp(container, challenge="c" * 43, code="123456", ip="203.0.113.60")
    assert _audit_rows(container) == before


def test_a_right_password_that_would_fill_the_address_budget_begins_no_pause(
    container: Container, clock: FakeClock
) -> None:
    """A right password is no guess: its pre-count is taken back, so it records no pause, and the next failure does."""
    make_user(container)
    for n in range(throttle.IP_LIMIT - 1):
        _fail(container, f"user{n}@example.com", ip="203.0.113.50")
    assert sign_in(container, ip="203.0.113.50")
    assert _events(container, "ip_throttled") == []
    _fail(container, "nobody@example.com", ip="203.0.113.50")
    assert [(e.ip, e.detail) for e in _events(container, "ip_throttled")] == [("203.0.113.50", "sign-in")]
    with pytest.raises(Throttled):
        auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.50")


def test_an_ipv6_host_that_changes_address_each_try_is_one_address(container: Container) -> None:
    """One IPv6 host holds a whole /64: spraying from a new address of it each time still meets the limit, while
    the next /64 (another host) is not held up."""
    make_user(container)
    for n in range(10):
        _fail(container, f"user{n}@example.com", ip=f"2001:db8:7:1::{n + 1:x}")
    with pytest.raises(Throttled):
        auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="2001:db8:7:1:ffff:ffff:ffff:fffe")
    assert sign_in(container, ip="2001:db8:7:2::1")
    with pytest.raises(Throttled):  # an IPv4 address written as IPv6 is that IPv4 address, not a range of its own
        for n in range(11):
            _fail(container, f"user{n}@example.com", ip="::ffff:203.0.113.70" if n % 2 else "203.0.113.70")


def test_successful_sign_ins_do_not_count_towards_the_ip_limit(container: Container) -> None:
    make_user(container)
    for _ in range(25):
        step = auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="203.0.113.60")
        assert step.ticket


def test_ticket_is_single_use_and_lasts_60_seconds(container: Container, clock: FakeClock) -> None:
    make_user(container)
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    assert step.ticket and step.challenge is None
    auth.redeem_ticket(container, ticket=step.ticket)
    with pytest.raises(TokenInvalid):
        auth.redeem_ticket(container, ticket=step.ticket)
    late = auth.begin_sign_in(container, login="alice", password=PASSWORD).ticket
    assert late
    clock.advance(seconds=60)
    with pytest.raises(TokenInvalid):
        auth.redeem_ticket(container, ticket=late)
    for forged in ["", "x" * 10_000, "' OR 1=1 --", late[:-1] + "A", None]:
        with pytest.raises(TokenInvalid):
            auth.redeem_ticket(container, ticket=forged)  # type: ignore[arg-type]


def test_disabled_user_cannot_redeem_a_ticket(container: Container) -> None:
    alice = make_user(container)
    root = make_admin(container)
    ticket = auth.begin_sign_in(container, login="alice", password=PASSWORD).ticket
    admin.set_disabled(container, root.id, alice.id, True)
    with pytest.raises(TokenInvalid):
        auth.redeem_ticket(container, ticket=ticket or "")


def test_legacy_and_weaker_hashes_are_upgraded_at_sign_in(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_user(container)
    legacy = bcrypt.hashpw(OTHER_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    with unit_of_work(container.engine) as session:
        session.execute(update(User).values(password_hash=legacy, password_scheme="legacy"))
    monkeypatch.setattr(passwords, "BCRYPT_COST", 5)
    sign_in(container, "alice", OTHER_PASSWORD)
    with unit_of_work(container.engine) as session:
        row = session.get(User, alice.id)
        assert row is not None and row.password_scheme == "pbcrypt" and row.password_hash.startswith("$2b$05$")
    sign_in(container, "alice", OTHER_PASSWORD)  # still the same password for the user


def test_hostile_logins_fail_cleanly(container: Container) -> None:
    make_user(container)
    for login in ["' OR '1'='1", "alice'--", "<script>alert(1)</script>", "x" * 10_000, "alice\x00", "ali\r\nce"]:
        assert _fail(container, login, PASSWORD) == GENERIC
    for password in ["x" * 10_000, PASSWORD + "\x00", 12345]:
        assert _fail(container, "alice", password) == GENERIC  # type: ignore[arg-type]


def test_sign_in_events_are_logged_with_user_and_result(container: Container, caplog: pytest.LogCaptureFixture) -> None:
    alice = make_user(container)
    caplog.set_level(logging.INFO, logger="finsync.auth")
    sign_in(container)
    for _ in range(5):
        _fail(container, "alice")
    records = [(r.event, r.result, r.user_id) for r in caplog.records if hasattr(r, "event")]  # type: ignore[attr-defined]
    assert ("sign_in_ok", "ok", str(alice.id)) in records
    assert ("sign_in_failed", "failure", str(alice.id)) in records
    assert ("account_locked", "failure", str(alice.id)) in records


def test_a_blank_field_is_named_and_counts_towards_no_pause(container: Container, mailer: MemoryMailer) -> None:
    """An empty password or code is a slip (Enter pressed too early), not a guess: it is named, and however often
    it happens, on the sign-in page or in a signed-in form, it neither pauses the account nor mails its owner."""
    from services import account, totp
    from services.errors import InputError
    from tests.integration.auth_support import code_at, enable_totp

    alice = make_user(container)
    token = sign_in(container)
    for _ in range(6):
        with pytest.raises(InputError, match="Enter your email or username and your password"):
            auth.begin_sign_in(container, login="alice", password="")
        with pytest.raises(InputError, match="Enter your password"):
            account.change_password(container, alice.id, current_password="", new_password=OTHER_PASSWORD)
    secret = enable_totp(container, alice.id, current_token=token)
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    for blank in ("", "   "):
        with pytest.raises(InputError, match="Enter the 6-digit code"):
            auth.complete_totp(container, challenge=step.challenge or "", code=blank)
        with pytest.raises(InputError, match="Enter the 6-digit code"):
            totp.disable_totp(container, alice.id, password=PASSWORD, code=blank)
    assert not _events(container, "account_locked") and not any(
        "paused" in m for m in mails_to(mailer, "alice@example.com")
    )
    assert not _events(container, "sign_in_failed") and not _events(container, "reauth_failed")
    fresh = code_at(secret, container.clock(), steps=1)  # the set-up used this step's code
    assert auth.complete_totp(container, challenge=step.challenge or "", code=fresh)  # the challenge is still good
