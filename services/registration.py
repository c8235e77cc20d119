"""Registration and email verification: one answer whether or not an address has an account, limits per address."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from services import audit, notices, passwords, throttle, tokens, users
from services.container import Container
from services.credentials import Pending, count_address, load_user, tell_address_owner
from services.db import unit_of_work
from services.errors import InputError, PermissionDenied, Throttled, TokenInvalid
from services.users import UserPublic

RESEND_EVERY = timedelta(seconds=60)
REGISTER_LIMIT = 10  # sign-ups that reach the password hash, per client address per throttle.IP_WINDOW
# Passwords scored for sign-ups, per client address per throttle.IP_WINDOW, refused ones too: zxcvbn takes seconds
# over some 100-character passwords (many look-alike symbols such as "4@8({[<369!|7$5+%2"), so scoring is limited
# before it is done, like bcrypt. Far more than anyone choosing a password needs.
PASSWORD_CHECK_LIMIT = 15  # (at most throttle.KEPT)


@dataclass(frozen=True)
class RegistrationReceived:
    """The one answer to a registration, the same whether or not the address already had an account."""

    email: str  # the address as typed (normalised), never the stored one: its spelling would tell


def register(c: Container, *, email: str, username: str, password: str, ip: str = "") -> RegistrationReceived:
    """Create an unverified account and mail a verification link; ``InputError`` says what to fix.

    An address that already has an account gets the same answer after the same work (one bcrypt
    hash), and no second account: its owner gets a notice instead, at most one an hour, so the form
    can neither probe addresses nor flood a mailbox (security bar B3).
    """
    if not all(isinstance(v, str) for v in (email, username, password)):
        raise InputError("Enter an email address, a username and a password.")
    email, username = users.clean_email(email), users.clean_username(username)
    now, ip = c.clock(), audit.clean_ip(ip)
    _count(c, ip, now, "password_check", PASSWORD_CHECK_LIMIT, what="sign-up attempts", detail="registration tries")
    users.check_new_password(password, email, username)
    # before bcrypt and the mail: a script can spend neither CPU nor mailboxes
    _count(c, ip, now, "register", REGISTER_LIMIT, what="new accounts", detail="registration")
    password_hash = passwords.hash_password(password, c.pepper)  # on both paths below, so the time matches
    for attempt in (1, 2):
        p = Pending()
        try:
            with unit_of_work(c.engine, immediate=True) as session:
                _register_in(session, c, email, username, password_hash, ip=ip, now=now, p=p)
            break
        except IntegrityError:  # a concurrent registration took the address or name first (PostgreSQL)
            if attempt == 2:
                raise
    p.finish(c)
    return RegistrationReceived(email)


def _count(c: Container, ip: str, now: datetime, scope: str, limit: int, *, what: str, detail: str) -> None:
    """Count one event of ``scope`` for the client address, or refuse it past ``limit`` with ``Throttled``.

    The event that fills the budget audits the pause (``count_address``); the refusals in it write nothing.
    """
    with unit_of_work(c.engine, immediate=True) as session:
        wait = throttle.ip_retry_after(session, ip, now, scope=scope, limit=limit)
        if not wait:
            count_address(session, ip, now, detail=detail, scope=scope, limit=limit)
            return
    minutes = max(1, (wait + 59) // 60)
    raise Throttled(f"Too many {what} from your network. Try again in {minutes} minutes.", wait)


def _register_in(
    session: Session, c: Container, email: str, username: str, password_hash: str, *, ip: str, now: datetime, p: Pending
) -> None:
    # Deliberate: a taken username is said plainly, because people must be able to pick one. It is
    # checked before the email and whatever the email, so a known username cannot probe addresses.
    if users.username_taken(session, users.fold(username)):
        raise InputError("That username is taken; choose another.")
    owner = users.find_by_email(session, users.fold(email), lock=True)
    if owner is not None:
        mail = notices.registration_attempt(c, owner.email, now)
        tell_address_owner(session, c, owner, mail, event="registration_email_taken", ip=ip, now=now, p=p)
        return
    user = users.add_user(session, email=email, username=username, password_hash=password_hash)
    user.created_at = user.password_changed_at = now
    token = tokens.issue(session, user.id, tokens.VERIFY, now)
    audit.record(session, event="registered", user_id=user.id, ip=ip, at=now)
    p.mail(session, c, user.id, notices.verify_email(c, user.email, token))


def verify_email(c: Container, token: str, *, ip: str = "") -> UserPublic:
    """Confirm a new account's address or a changed address from the link; ``TokenInvalid`` otherwise."""
    now = c.clock()
    p = Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        row, user = tokens.claim(session, token, (tokens.VERIFY, tokens.EMAIL_CHANGE), now)
        if row is None or user is None or user.status != "active":
            raise TokenInvalid()
        row.used_at = now
        if row.purpose == tokens.VERIFY:
            user.email_verified = True
            audit.record(session, event="email_verified", user_id=user.id, ip=ip, at=now)
        elif row.payload is not None and users.email_taken(session, users.fold(row.payload)):
            p.fail(InputError("That email address or username is already registered."))
        elif row.payload is not None:
            user.email, user.email_norm, user.email_verified = row.payload, users.fold(row.payload), True
            tokens.revoke(session, user.id, (tokens.RESET, tokens.VERIFY, tokens.EMAIL_CHANGE), now)
            audit.record(session, event="email_changed", user_id=user.id, ip=ip, at=now)
        view = UserPublic.of(user)
    p.finish(c)
    return view


def resend_verification(c: Container, user_id: uuid.UUID) -> None:
    """A new verification link (the old one stops working); at most one a minute per account."""
    now = c.clock()
    p = Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id)
        if user.email_verified:
            raise InputError("Your email address is already verified.")
        last = tokens.latest_created(session, user.id, tokens.VERIFY)
        if last is not None and now - last < RESEND_EVERY:
            wait = math.ceil((last + RESEND_EVERY - now).total_seconds())
            raise Throttled(f"We just sent a link. You can ask for another in {wait} seconds.", retry_after=wait)
        tokens.revoke(session, user.id, (tokens.VERIFY,), now)
        p.mail(
            session, c, user.id, notices.verify_email(c, user.email, tokens.issue(session, user.id, tokens.VERIFY, now))
        )
    p.finish(c)


def require_verified(c: Container, user_id: uuid.UUID) -> None:
    """``PermissionDenied`` until the user has verified the email address (needed to link a bank)."""
    with unit_of_work(c.engine) as session:
        if not load_user(session, user_id).email_verified:
            raise PermissionDenied(
                "Verify your email address first: open the link we emailed you, or ask for a new one in Settings."
            )
