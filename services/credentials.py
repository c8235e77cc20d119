"""Shared steps of the account flows: deferred errors, failure counting, re-authentication."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from models import User
from services import audit, mail_queue, notices, otp, passwords, throttle
from services.container import Container
from services.db import unit_of_work
from services.errors import FinsyncError, InputError, NotFound, PermissionDenied, Throttled

log = logging.getLogger("finsync.auth")
WRONG_PASSWORD = "That password is not right."  # noqa: S105 - a message, not a password
WRONG_CODE = "That code is not right, or it was already used. Enter the current code from your app or a recovery code."
PAUSED = "Sign-in for this account is paused after failed attempts; try again later or reset your password."
OWNER_NOTICE_EVERY = timedelta(hours=1)  # at most one "someone tried to use your address" mail an hour, per kind
NOTICE_MAILED = "notice mailed"
# New passwords scored per account per 15 minutes (at most throttle.KEPT): zxcvbn takes seconds over some passwords
# (see services.registration), and a refused one leaves the form ready for the next.
PASSWORD_TRIES = 15  # per flow (Settings, a reset link): the one does not spend the other's


@dataclass
class Pending:
    """What a flow does after its unit of work commits: send the mails it queued, then raise its deferred error.

    Failures must be committed (counters, audit rows) before the caller sees the error, so errors
    are parked here instead of raised inside the transaction.
    """

    queued: list[uuid.UUID] = field(default_factory=list)
    error: FinsyncError | None = None

    def mail(self, session: Session, c: Container, user_id: uuid.UUID, mail: notices.Mail) -> None:
        """Queue ``mail`` in the flow's unit of work (nothing is sent if it rolls back)."""
        self.queued.append(mail_queue.enqueue(session, c, mail, user_id=user_id))

    def fail(self, error: FinsyncError) -> None:
        self.error = error

    def finish(self, c: Container) -> None:
        mail_queue.after_commit(c, self.queued)  # what fails to send waits in the queue for the scheduler
        if self.error is not None:
            raise self.error


def load_user(session: Session, user_id: uuid.UUID, *, lock: bool = False) -> User:
    """An active user, or ``NotFound``/``PermissionDenied``."""
    user = session.get(User, user_id, with_for_update=lock) if isinstance(user_id, uuid.UUID) else None
    if user is None:
        raise NotFound("That account does not exist.")
    if user.status != "active":
        raise PermissionDenied("This account is disabled.")
    return user


def count_failure(session: Session, c: Container, user: User, p: Pending, *, ip: str, now: datetime) -> None:
    """One failed proof of identity; the fifth in 15 minutes pauses the account and mails its owner once."""
    until = throttle.record_failure(session, throttle.account_key(user.id), now)
    if until is not None:
        announce_lock(session, c, user, until, p, ip=ip, now=now)


def count_address(
    session: Session,
    ip: str,
    now: datetime,
    *,
    detail: str,
    scope: str = "auth",
    limit: int = throttle.IP_LIMIT,
    window: timedelta = throttle.IP_WINDOW,
) -> int:
    """Count one event of ``scope`` for the client address; the one that fills its budget begins a pause, audited here.

    Only then: the refusals in the pause are answered from the counter and write nothing, so a script driving a form
    past its limit cannot grow the append-only audit table, and each row says when a pause began.
    """
    count = throttle.record_ip(session, ip, now, scope=scope, window=window)
    if count == limit:
        audit.record(session, event="ip_throttled", ip=ip, detail=detail, at=now)
    return count


def announce_lock(
    session: Session, c: Container, user: User, until: datetime, p: Pending, *, ip: str, now: datetime
) -> None:
    """A lock just started: audit it and mail the owner once (saying whether only a reset lifts it)."""
    hard = throttle.is_hard_stop(until, now)
    minutes = int((until - now).total_seconds() // 60)
    detail = f"until reset: {throttle.HARD_STOP} failures in a row" if hard else f"{minutes} min"
    audit.record(session, event="account_locked", user_id=user.id, ip=ip, detail=detail, at=now)
    p.mail(session, c, user.id, notices.locked(user.email, until, for_good=hard))


def second_factor(
    session: Session, c: Container, user: User, code: object, p: Pending, *, ip: str, now: datetime
) -> str | None:
    """Check a TOTP or recovery code: "totp"/"recovery", or None (audited, counted; replays mailed)."""
    result = otp.check(session, c, user, code, now)
    if result == "totp":
        return result
    if result == "recovery":
        audit.record(session, event="recovery_code_used", user_id=user.id, ip=ip, at=now)
        p.mail(
            session, c, user.id, notices.notice(user.email, "a recovery code was used", "A recovery code was used", now)
        )
        return result
    if result == "replay":
        audit.record(session, event="totp_replay", user_id=user.id, ip=ip, detail="code already used", at=now)
        p.mail(
            session,
            c,
            user.id,
            notices.notice(
                user.email,
                "a sign-in code was used twice",
                "A two-factor code for your account was entered again after it had been used; it was refused",
                now,
            ),
        )
    else:
        audit.record(session, event="totp_failed", user_id=user.id, ip=ip, detail="wrong or expired code", at=now)
    count_failure(session, c, user, p, ip=ip, now=now)
    return None


def reauth(
    session: Session,
    c: Container,
    user: User,
    p: Pending,
    *,
    action: str,
    password: object,
    code: object = None,
    need_code: bool = False,
    ip: str = "",
    failed_event: str = "reauth_failed",
) -> bool:
    """Prove it is still the owner (password, plus a code when asked); on failure park an ``InputError``.

    A wrong password is audited as ``failed_event`` with the ``action`` it was for (a wrong code as
    ``totp_failed``), and counts towards the account's sign-in pause.
    """
    now = c.clock()
    if not isinstance(password, str) or not password:  # a slip, not a guess: named, and counts towards no pause
        p.fail(InputError("Enter your password."))
        return False
    if need_code and not (isinstance(code, str) and code.strip()):
        p.fail(InputError("Enter the 6-digit code from your authenticator app, or a recovery code."))
        return False
    if throttle.locked_until(session, throttle.account_key(user.id), now) is not None:
        p.fail(PermissionDenied(PAUSED))
        return False
    ok = isinstance(password, str) and passwords.verify_password(
        password, user.password_hash, c.pepper, scheme=user.password_scheme
    )
    if not ok:
        audit.record(session, event=failed_event, user_id=user.id, ip=ip, detail=f"{action}: wrong password", at=now)
        count_failure(session, c, user, p, ip=ip, now=now)
        p.fail(InputError(WRONG_PASSWORD))
        return False
    if need_code and second_factor(session, c, user, code, p, ip=ip, now=now) is None:
        p.fail(InputError(WRONG_CODE))
        return False
    return True


def confirm_identity(
    c: Container,
    user_id: uuid.UUID,
    *,
    action: str,
    password: object,
    code: object = None,
    ip: str = "",
) -> None:
    """Re-authentication before a sensitive action: the password, plus a code when two-factor is on (bar D7).

    Raises what ``reauth`` parks: ``InputError`` (wrong password or code) or ``PermissionDenied`` (paused);
    failures count towards the account's sign-in pause like any other.
    """
    p = Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        reauth(session, c, user, p, action=action, password=password, code=code, need_code=user.totp_enabled, ip=ip)
    p.finish(c)


def tell_address_owner(
    session: Session, c: Container, owner: User, mail: notices.Mail, *, event: str, ip: str, now: datetime, p: Pending
) -> None:
    """Someone tried to use ``owner``'s address: audit ``event`` on their account and mail them, at most once an hour.

    Registration and email change answer a taken address as a free one and call this instead, so the
    forms can neither probe addresses nor flood a mailbox (security bar B3).
    """
    last = audit.last_at(session, user_id=owner.id, event=event, detail=NOTICE_MAILED)
    if last is not None and now - last < OWNER_NOTICE_EVERY:
        audit.record(session, event=event, user_id=owner.id, ip=ip, detail="limited", at=now)
        return
    audit.record(session, event=event, user_id=owner.id, ip=ip, detail=NOTICE_MAILED, at=now)
    p.mail(session, c, owner.id, mail)


def set_password(session: Session, c: Container, user: User, new_password: str, now: datetime) -> None:
    """Check the policy and store a fresh hash of our scheme (``InputError`` says why not)."""
    if not isinstance(new_password, str):
        raise InputError("Enter a password.")
    passwords.check_policy(new_password, context=[user.email, user.username, user.email.split("@")[0]])
    user.password_hash = passwords.hash_password(new_password, c.pepper)
    user.password_scheme = passwords.SCHEME
    user.password_changed_at = now


def set_password_counted(
    session: Session, c: Container, user: User, new_password: str, now: datetime, p: Pending, *, flow: str
) -> bool:
    """``set_password`` within the account's budget of new passwords scored for ``flow`` (``PASSWORD_TRIES``); False
    with the refusal parked on ``p``, so the flow commits and the try stays counted.

    Counted only here, once the flow has proven who asks (the current password, a live reset link): a signed-in
    browser without the password spends nothing. And each flow has its own budget: whoever knows the old password
    cannot spend the reset link's, the owner's way to take the account back.
    """
    key = f"password_check:{flow}:{user.id}"
    wait = throttle.retry_after(session, key, now, limit=PASSWORD_TRIES)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        p.fail(Throttled(f"You tried many new passwords in a short time. Try again in {minutes} minutes.", wait))
        return False
    throttle.record_event(session, key, now, throttle.IP_WINDOW)
    try:
        set_password(session, c, user, new_password, now)  # raises before it changes anything
    except InputError as exc:
        p.fail(exc)
        return False
    return True
