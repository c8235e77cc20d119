"""Account flows of a known user: password reset and change, email change, deleting the account."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session, col

from models import AuditEvent, OneTimeToken, PlaidApiEvent, User
from services import audit, mail_queue, notices, otp, sessions, throttle, tokens, users
from services.container import Container
from services.credentials import (
    Pending,
    confirm_identity,
    count_address,
    load_user,
    reauth,
    set_password_counted,
    tell_address_owner,
)
from services.db import unit_of_work
from services.errors import InputError, NotFound, Throttled, TokenInvalid

RESET_EVERY = timedelta(seconds=60)  # at most one reset email a minute per account
EMAIL_CHANGE_EVERY = timedelta(seconds=60)  # at most one email change (link or notice) a minute per account
RESET_IP_LIMIT = 10  # and ten requests per client address in three minutes (Rails' default)
RESET_IP_WINDOW = timedelta(minutes=3)


def request_password_reset(c: Container, *, email: str, ip: str = "") -> None:
    """Mail a 30-minute reset link if the account exists; the caller shows the same message either way.

    Both paths run the same queries and no bcrypt, so neither the answer nor its timing says whether
    the address is registered (with SMTP, the send itself takes time: see docs); limits are silent too.
    Past the address's limit (every request counts, refused ones too) nothing is written but the counter: the pause
    is audited once, as it begins, so a script cannot grow the append-only audit table.
    """
    if not isinstance(email, str):
        raise InputError("Enter an email address.")
    key = users.fold(users.clean_email(email))
    now, ip, p = c.clock(), audit.clean_ip(ip), Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        count = count_address(session, ip, now, detail="password reset", scope="reset", limit=RESET_IP_LIMIT,
                              window=RESET_IP_WINDOW)  # fmt: skip
        user = session.execute(select(User).where(col(User.email_norm) == key)).scalar_one_or_none()
        last = tokens.latest_created(session, user.id, tokens.RESET) if user is not None else None
        if count > RESET_IP_LIMIT:
            pass  # the address is paused: for an account or for nobody alike, no row (its beginning has one)
        elif user is None or user.status != "active":
            audit.record(session, event="password_reset_requested", ip=ip, detail="no active account", at=now)
        elif last is not None and now - last < RESET_EVERY:
            audit.record(session, event="password_reset_requested", user_id=user.id, ip=ip, detail="limited", at=now)
        else:
            tokens.revoke(session, user.id, (tokens.RESET,), now)
            token = tokens.issue(session, user.id, tokens.RESET, now)
            audit.record(session, event="password_reset_requested", user_id=user.id, ip=ip, at=now)
            p.mail(session, c, user.id, notices.reset(c, user.email, token))
    p.finish(c)


def reset_link_usable(c: Container, token: str) -> bool:
    """Whether a reset link can still set a password (unused, unexpired), so a dead one shows no form."""
    with unit_of_work(c.engine) as session:
        return tokens.find(session, token, (tokens.RESET,), c.clock()) is not None


def reset_password(c: Container, *, token: str, new_password: str, ip: str = "") -> None:
    """Set a new password from a reset link; ends every session and clears a sign-in pause.

    Two-factor sign-in stays on: a reset proves the mailbox, not the second factor (ASVS 6.4.3). Except on
    an account whose address was never confirmed: someone else may have registered it with this mailbox
    and put their own authenticator on it, so the reset turns that off and the owner can set up their own.
    """
    now, p = c.clock(), Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        row, user = tokens.claim(session, token, (tokens.RESET,), now)
        if row is None or user is None or user.status != "active":
            raise TokenInvalid("This reset link is invalid, already used or expired. Ask for a new one.")
        if set_password_counted(session, c, user, new_password, now, p, flow="reset"):  # refused: the link stays
            _reset_done(session, c, user, row, ip=ip, now=now, p=p)
    p.finish(c)


def _reset_done(
    session: Session, c: Container, user: User, row: OneTimeToken, *, ip: str, now: datetime, p: Pending
) -> None:
    """The new password is set: use the link up, end every session and sign-in pause, and tell the owner."""
    row.used_at = now
    squatted = not user.email_verified and (user.totp_enabled or user.totp_secret_enc is not None)
    if squatted:  # whoever set two-factor up never proved this mailbox: its owner, who just did, takes it back
        user.totp_enabled, user.totp_secret_enc, user.totp_last_step = False, None, None
        otp.drop_recovery_codes(session, user.id)
        audit.record(session, event="totp_disabled", user_id=user.id, ip=ip, detail="unconfirmed account", at=now)
    user.email_verified = True  # the link reached the mailbox, which is what verification proves
    # A pending email change may be an intruder's: the owner taking the account back ends it too.
    tokens.revoke(session, user.id, (tokens.RESET, tokens.TICKET, tokens.CHALLENGE, tokens.EMAIL_CHANGE), now)
    count = sessions.revoke_all(session, user.id, now)
    throttle.clear(session, throttle.account_key(user.id))
    audit.record(
        session,
        event="password_reset_done",
        user_id=user.id,
        ip=ip,
        detail=audit.sessions_ended(count, others=False),
        at=now,
    )
    what = "Your password was reset" + (
        " and two-factor sign-in, set up before you confirmed this address, turned off" if squatted else ""
    )
    p.mail(session, c, user.id, notices.notice(user.email, "your password was reset", what, now))


def change_password(
    c: Container,
    user_id: uuid.UUID,
    *,
    current_password: str,
    new_password: str,
    current_token: str | None = None,
    ip: str = "",
) -> None:
    """Change the password (the current one is required); other sessions end, a notice is mailed."""
    now, p = c.clock(), Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if reauth(session, c, user, p, action="password change", password=current_password, ip=ip,
                  failed_event="password_change_failed"):  # fmt: skip
            if new_password == current_password:  # after the check: this answer tells only the password's owner
                raise InputError("That is the password you have now; choose a new one.")
            if set_password_counted(session, c, user, new_password, now, p, flow="change"):  # refused: committed
                _changed(session, c, user, current_token, ip=ip, now=now, p=p)
    p.finish(c)


def _changed(
    session: Session, c: Container, user: User, current_token: str | None, *, ip: str, now: datetime, p: Pending
) -> None:
    """The new password is set: end the other sessions and links, and tell the owner."""
    keep = sessions.find_id(session, current_token, user.id)
    count = sessions.revoke_all(session, user.id, now, keep=keep)
    tokens.revoke(session, user.id, (tokens.RESET, tokens.EMAIL_CHANGE), now)
    audit.record(session, event="password_changed", user_id=user.id, ip=ip, detail=audit.sessions_ended(count), at=now)
    mail = notices.notice(user.email, "your password was changed", "Your password was changed", now)
    p.mail(session, c, user.id, mail)


def request_email_change(
    c: Container, user_id: uuid.UUID, *, password: str, new_email: str, code: str | None = None, ip: str = ""
) -> None:
    """Mail a 48-hour confirmation link to the new address and a notice to the old one (password, and code with 2FA).

    Identity is checked before the address is looked at, and a taken address gets the same answer, the
    same notice to the old address and the same activity row as a free one (its owner is told instead
    of a link being made), so this form cannot tell whether an address is registered (bar B3).
    """
    if not isinstance(new_email, str):
        raise InputError("Enter an email address.")
    new = users.clean_email(new_email)
    now, p = c.clock(), Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if users.fold(new) == user.email_norm:
            raise InputError("That is already your email address.")
        if reauth(session, c, user, p, action="email change", password=password, code=code,
                  need_code=user.totp_enabled, ip=ip):  # fmt: skip
            # One a minute, free address or taken alike: no one mails links to addresses of their choice in bulk.
            if throttle.record_event(session, f"email_change:{user.id}", now, EMAIL_CHANGE_EVERY) > 1:
                raise Throttled("We just sent a link. You can ask to change your address again in a minute.")
            # Not locked: two users moving onto each other's address at once would deadlock on PostgreSQL.
            owner = users.find_by_email(session, users.fold(new))
            # A taken address waits for a confirmation too (its link is never sent): Settings shows the same.
            tokens.revoke(session, user.id, (tokens.EMAIL_CHANGE,), now)
            token = tokens.issue(session, user.id, tokens.EMAIL_CHANGE, now, payload=new)
            if owner is None:
                p.mail(session, c, user.id, notices.verify_email(c, new, token, change=True))
            else:
                mail = notices.email_change_attempt(c, owner.email, now)
                tell_address_owner(session, c, owner, mail, event="email_change_email_taken", ip=ip, now=now, p=p)
            audit.record(session, event="email_change_requested", user_id=user.id, ip=ip, at=now)
            what = "Someone asked to change the email address of your finsync account; it changes once the new address confirms"
            p.mail(session, c, user.id, notices.notice(user.email, "email change requested", what, now))
    p.finish(c)


@dataclass(frozen=True)
class PendingEmailChange:
    """An email change asked for and not yet confirmed from the new address."""

    new_email: str
    expires_at: datetime


def pending_email_change(c: Container, user_id: uuid.UUID) -> PendingEmailChange | None:
    """The address the account is waiting to move to, until its link is opened, expires or the change is cancelled."""
    with unit_of_work(c.engine) as session:
        row = tokens.latest_live(session, user_id, tokens.EMAIL_CHANGE, c.clock())
        return PendingEmailChange(row.payload, row.expires_at) if row is not None and row.payload else None


def cancel_email_change(c: Container, user_id: uuid.UUID, *, ip: str = "") -> bool:
    """Withdraw a pending email change (its link stops working); False when there was none to cancel."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if tokens.latest_live(session, user.id, tokens.EMAIL_CHANGE, now) is None:
            return False
        tokens.revoke(session, user.id, (tokens.EMAIL_CHANGE,), now)
        audit.record(session, event="email_change_cancelled", user_id=user.id, ip=ip, at=now)
        return True


def delete_account(
    c: Container,
    user_id: uuid.UUID,
    *,
    password: str,
    code: str | None = None,
    remove_bank_items: Callable[[uuid.UUID], None] | None = None,
    ip: str = "",
) -> None:
    """Delete the account and everything it owns after re-authentication.

    Banks are unlinked at Plaid first (``banking.remove_all_items`` unless a hook is given; if it
    raises, nothing is deleted). The
    user's earlier audit rows keep their event and time but lose IP and detail; one row
    ``account_deleted`` without personal data remains.
    """
    confirm_identity(c, user_id, action="account deletion", password=password, code=code, ip=ip)
    if remove_bank_items is None:
        from services import banking  # banking builds on accounts, not the other way round

        banking.remove_all_items(c, user_id)
    else:
        remove_bank_items(user_id)
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        doomed = session.get(User, user_id)
        if doomed is None:
            raise NotFound("That account does not exist.")
        email = doomed.email
        session.execute(
            update(AuditEvent)
            .where(or_(col(AuditEvent.user_id) == user_id, col(AuditEvent.actor_id) == user_id))
            .values(ip="", detail="")
        )
        throttle.clear(session, throttle.account_key(user_id))
        # The Plaid call log names the user (no foreign key: it outlives the items it logs); it goes too.
        session.execute(delete(PlaidApiEvent).where(col(PlaidApiEvent.user_id) == user_id))
        session.delete(doomed)  # sessions, tokens, recovery codes and waiting mail go too (ON DELETE CASCADE)
        audit.record(session, event="account_deleted", user_id=user_id, at=now)
        gone = "If this was not you, contact your finsync administrator: there is no password left to reset."
        farewell = notices.notice(
            email, "your account was deleted", "Your account and its data were deleted", now, advice=gone
        )
        queued = mail_queue.enqueue(session, c, farewell)  # tied to no account: there is none left
    mail_queue.after_commit(c, [queued])
