"""Sign-in (password, then TOTP, then a one-minute hand-off ticket); the account flows' front door for pages.

Every sign-in failure (unknown login, wrong password, paused or disabled account) raises the same
``InvalidCredentials`` after the same bcrypt work, so neither the message nor the timing tells an
attacker which accounts exist (ASVS 6.3.8). Limits live in ``services.throttle``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import Session

from models import User
from services import audit, passwords, sessions, throttle, tokens, users
from services.account import (
    cancel_email_change,
    change_password,
    delete_account,
    pending_email_change,
    request_email_change,
    request_password_reset,
    reset_link_usable,
    reset_password,
)
from services.container import Container
from services.credentials import Pending, announce_lock, count_address, second_factor
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials, SignInEnded, Throttled, TokenInvalid
from services.registration import RegistrationReceived, register, require_verified, resend_verification, verify_email

MAX_CHALLENGE_TRIES = 5

__all__ = [
    "RegistrationReceived",
    "SignInStep",
    "begin_sign_in",
    "cancel_email_change",
    "change_password",
    "complete_totp",
    "delete_account",
    "pending_email_change",
    "redeem_ticket",
    "register",
    "request_email_change",
    "request_password_reset",
    "require_verified",
    "resend_verification",
    "reset_link_usable",
    "reset_password",
    "verify_email",
]


@dataclass(frozen=True)
class SignInStep:
    """What follows a correct password: a hand-off ticket, or a TOTP challenge to answer first."""

    kind: Literal["ticket", "totp"]
    ticket: str | None
    challenge: str | None


# sign-in -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    id: uuid.UUID
    password_hash: str
    scheme: str
    refusal: str  # "" when the account may sign in, else why not (for the audit row only)
    lock_started: datetime | None
    password_changed_at: datetime


SIGN_IN_PAUSE = "sign-in"  # the audit detail of the address's pause (the password and code steps share one budget)


def _throttled(session: Session, ip: str, now: datetime, p: Pending) -> bool:
    """Whether the address is paused (a refusal parked on ``p``); it writes nothing: the failure that began the pause
    recorded it, and a script retrying at HTTP speed must not grow the audit table."""
    wait = throttle.ip_retry_after(session, ip, now)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        p.fail(Throttled(f"Too many failed sign-ins from your network. Try again in {minutes} minutes.", wait))
    return bool(wait)


def _prepare(session: Session, login: object, ip: str, now: datetime, p: Pending) -> tuple[_Target | None, bool]:
    """Check and pre-count the attempt (counted before bcrypt, so parallel guesses are counted too); also whether the
    count filled the address's budget (the pause it begins is audited once the attempt has failed)."""
    if _throttled(session, ip, now, p):
        return None, False
    filled = throttle.record_ip(session, ip, now) == throttle.IP_LIMIT
    user = users.find_by_login(session, login) if isinstance(login, str) else None
    if user is None:
        return None, filled
    key = throttle.account_key(user.id)
    refusal, started = "", None
    if user.status != "active":
        refusal = "disabled"
    elif throttle.locked_until(session, key, now) is not None:
        refusal = "locked"
    else:
        started = throttle.record_failure(session, key, now)
    target = _Target(user.id, user.password_hash, user.password_scheme, refusal, started, user.password_changed_at)
    return target, filled


def _pause_began(session: Session, ip: str, now: datetime) -> None:
    """The failed attempt whose pre-count filled the address's budget: audit the pause it begins, unless the count was
    taken back meanwhile (a right password refused because parallel guesses paused the account)."""
    if throttle.count_in_window(session, throttle.ip_key(ip), now, throttle.IP_WINDOW) >= throttle.IP_LIMIT:
        audit.record(session, event="ip_throttled", ip=ip, detail=SIGN_IN_PAUSE, at=now)


def _password_changed_meanwhile(user: User, target: _Target) -> bool:
    """Whether a reset or change replaced the password that this attempt checked (outside any transaction).

    Someone who knows the old password can keep an attempt under way at all times: the one that checked it must not
    open a session after the reset that ended every other. A hash merely upgraded by a concurrent sign-in with the
    same password is no change (only a hash that needed upgrading is upgraded, and never its date).
    """
    if user.password_changed_at != target.password_changed_at:
        return True
    upgraded = passwords.needs_rehash(target.password_hash, target.scheme)
    return user.password_hash != target.password_hash and not upgraded


def _right_but_refused(session: Session, user: User, target: _Target, ip: str, now: datetime) -> str:
    """Why a password that checked out is refused all the same ("" when it is not), undoing the address's count."""
    if _password_changed_meanwhile(user, target):
        return "password changed meanwhile"  # the old password: as wrong as any other, and counted so
    # The right password is no guess, whatever follows. (The address before the account: the order in which every
    # sign-in takes them, so two never wait on each other.)
    throttle.undo_ip(session, ip, now)
    if _locked_meanwhile(session, target, now):
        # right, but parallel wrong guesses paused the account while it was checked
        throttle.undo_failure(session, throttle.account_key(user.id), now, started_lock=False)
        return "locked"
    return ""


def _locked_meanwhile(session: Session, target: _Target, now: datetime) -> bool:
    """Whether a lock this attempt did not start began while its password was checked (outside any transaction)."""
    return (
        target.lock_started is None and throttle.locked_until(session, throttle.account_key(target.id), now) is not None
    )


def _grant(session: Session, c: Container, user: User, *, ip: str, now: datetime, method: str) -> str:
    """The factors are proven: clear failures, stamp the sign-in and issue a hand-off ticket."""
    throttle.clear(session, throttle.account_key(user.id))
    tokens.revoke(session, user.id, (tokens.RESET,), now)  # signing in proves the password is known
    user.last_sign_in_at = now
    audit.record(session, event="sign_in_ok", user_id=user.id, ip=ip, detail=method, at=now)
    return tokens.issue(session, user.id, tokens.TICKET, now)


BLANK_SIGN_IN = "Enter your email or username and your password."
BLANK_CODE = "Enter the 6-digit code from your authenticator app, or a recovery code."
# The code step's one refusal (a wrong code, or an account paused or disabled meanwhile: not told apart). The
# password step's "check your details" sent people back over a password already accepted.
CODE_REFUSED = "Sign-in failed: check the code and try again (the one your app shows now, or a recovery code)."


def begin_sign_in(c: Container, *, login: str, password: str, ip: str = "", user_agent: str = "") -> SignInStep:
    """Check the password; ``InvalidCredentials`` (one message) or ``Throttled`` for the client address.

    A blank field is a slip, not a guess: it is named and counts towards no pause (it tells nothing either way).
    """
    if isinstance(login, str) and isinstance(password, str) and (not login.strip() or not password):
        raise InputError(BLANK_SIGN_IN)
    now, ip, p = c.clock(), audit.clean_ip(ip), Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        target, filled = _prepare(session, login, ip, now, p)
    if p.error is not None:
        p.finish(c)
    secret = password if isinstance(password, str) else ""
    if target is None:
        passwords.dummy_verify(secret, c.pepper)  # same bcrypt time for a login that does not exist
        ok = False
    else:  # also for paused and disabled accounts, so their timing matches too
        ok = passwords.verify_password(secret, target.password_hash, c.pepper, scheme=target.scheme)
    with unit_of_work(c.engine, immediate=True) as session:
        user = session.get(User, target.id, with_for_update=True) if target is not None else None
        refusal = target.refusal if target is not None else ""
        if ok and user is not None and target is not None and not refusal:
            refusal = _right_but_refused(session, user, target, ip, now)
        if target is None or user is None or not ok or refusal:
            reason = "unknown account" if target is None else (refusal or "wrong password")
            audit.record(
                session, event="sign_in_failed", user_id=target.id if target else None, ip=ip, detail=reason, at=now
            )
            if user is not None and target is not None and target.lock_started is not None:
                announce_lock(session, c, user, target.lock_started, p, ip=ip, now=now)
            if filled:  # the same row whether the account exists or not
                _pause_began(session, ip, now)
            p.fail(InvalidCredentials())
            step = SignInStep("ticket", None, None)
        else:
            if passwords.needs_rehash(user.password_hash, user.password_scheme):
                user.password_hash = passwords.hash_password(secret, c.pepper)
                user.password_scheme = passwords.SCHEME
            if user.totp_enabled:
                started = target.lock_started is not None
                throttle.undo_failure(session, throttle.account_key(user.id), now, started_lock=started)
                step = SignInStep("totp", None, tokens.issue(session, user.id, tokens.CHALLENGE, now))
            else:
                step = SignInStep("ticket", _grant(session, c, user, ip=ip, now=now, method="password"), None)
    p.finish(c)
    return step


def complete_totp(c: Container, *, challenge: str, code: str, ip: str = "", user_agent: str = "") -> str:
    """Answer the TOTP challenge with an app code or a recovery code; returns a hand-off ticket."""
    if isinstance(code, str) and not code.strip():
        raise InputError(BLANK_CODE)  # a slip: named, and counts towards nothing
    now, ip, p = c.clock(), audit.clean_ip(ip), Pending()
    ticket = ""
    with unit_of_work(c.engine, immediate=True) as session:
        if not _throttled(session, ip, now, p):
            row, user = tokens.claim(session, challenge, (tokens.CHALLENGE,), now)  # the account, then the challenge
            paused = user is not None and throttle.locked_until(session, throttle.account_key(user.id), now)
            if row is None or user is None or user.status != "active" or paused:
                count_address(session, ip, now, detail=SIGN_IN_PAUSE)
                p.fail(SignInEnded() if row is None else InvalidCredentials(CODE_REFUSED))
            elif kind := second_factor(session, c, user, code, p, ip=ip, now=now):
                row.used_at = now
                ticket = _grant(session, c, user, ip=ip, now=now, method=f"password+{kind}")
            else:
                count_address(session, ip, now, detail=SIGN_IN_PAUSE)
                row.attempts += 1
                ended = row.attempts >= MAX_CHALLENGE_TRIES
                if ended:
                    row.used_at = now
                p.fail(SignInEnded() if ended else InvalidCredentials(CODE_REFUSED))
    p.finish(c)
    return ticket


TICKET_SCOPE = "ticket"  # refused hand-off tickets per client address: its own count, sign-in's limit and window
TICKET_THROTTLED = "Too many failed sign-ins from your network. Try again {when}."  # "in N minutes", or "later"


def redeem_ticket(c: Container, *, ticket: str, ip: str = "", user_agent: str = "") -> str:
    """Swap a fresh single-use ticket (60 s) for a new session; returns the raw token for the cookie.

    A dead ticket (``TokenInvalid``) counts against the client address: past ``throttle.IP_LIMIT`` within
    ``throttle.IP_WINDOW`` the address gets ``Throttled`` before any ticket is looked up (a live one is not spent).
    The pause is audited once, as it begins; the refusals in it write nothing, so a script posting on at HTTP speed
    fills no table.
    """
    now, ip, p = c.clock(), audit.clean_ip(ip), Pending()
    token = ""
    with unit_of_work(c.engine, immediate=True) as session:
        if wait := throttle.ip_retry_after(session, ip, now, scope=TICKET_SCOPE):
            p.fail(Throttled(TICKET_THROTTLED.format(when=f"in {max(1, (wait + 59) // 60)} minutes"), wait))
        else:
            row, user = tokens.claim(session, ticket, (tokens.TICKET,), now)
            if row is None or user is None or user.status != "active":
                # committed with the refusal below; the failure that reaches the limit starts the pause
                count_address(session, ip, now, detail="sign-in hand-off", scope=TICKET_SCOPE)
                p.fail(TokenInvalid())
            else:
                row.used_at = now
                token = sessions.create(session, c, user, ip=ip, user_agent=user_agent, now=now)
    p.finish(c)
    return token
