"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238) and recovery codes."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import segno

from models import User
from services import audit, notices, otp, sessions
from services.container import Container
from services.credentials import Pending, load_user, reauth
from services.db import unit_of_work
from services.errors import InputError

ISSUER = "finsync"


@dataclass(frozen=True)
class TotpEnrolment:
    """What the enrolment page shows once: the secret, its otpauth:// URI and a QR code (SVG)."""

    secret: str
    uri: str
    qr_html: str  # an <img> of the QR code, with its alt text


SETUP_LASTS = timedelta(minutes=30)  # to scan the code and type one in; after that, "Start again"


def start_totp_enrolment(c: Container, user_id: uuid.UUID, *, session_id: uuid.UUID | None = None) -> TotpEnrolment:
    """A fresh 160-bit secret to scan, kept encrypted on the account (not yet on) until ``confirm_totp``.

    The page shows it and keeps nothing: a rerun asks ``pending_enrolment`` again (CONVENTIONS: no
    TOTP secret in ``st.session_state``). Starting again replaces a secret that was never confirmed.
    The set-up belongs to ``session_id`` (the signed-in session that started it) for ``SETUP_LASTS``: no other
    session sees or confirms it, so a session stolen once cannot leave its own QR code for the owner to scan.
    """
    secret = pyotp.random_base32()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if user.totp_enabled:
            raise InputError("Two-factor sign-in is already on. Turn it off first to move it to another app.")
        _require_confirmed_address(user)
        user.totp_secret_enc = c.cipher.encrypt(
            secret, table="users", column="totp_secret_enc", row_id=user.id, owner=user.id
        )
        user.totp_last_step = None
        user.totp_pending_session_id, user.totp_pending_at = session_id, c.clock()
        return _enrolment(secret, user.email)


def _pending_for(c: Container, user: User, session_id: uuid.UUID | None) -> bool:
    """Whether ``user`` has a set-up that ``session_id`` started, still within its time."""
    started = user.totp_pending_at
    return (
        not user.totp_enabled
        and user.totp_secret_enc is not None
        and user.totp_pending_session_id == session_id
        and started is not None
        and c.clock() - started < SETUP_LASTS
    )


NEEDS_CONFIRMED_ADDRESS = (
    "Confirm your email address first (the link in the email we sent you): two-factor sign-in goes on an account "
    "whose address is proved to be yours."
)


def _require_confirmed_address(user: User) -> None:
    """Someone who registered another person's address must not be able to lock its owner out with their phone."""
    if not user.email_verified:
        raise InputError(NEEDS_CONFIRMED_ADDRESS)


def pending_enrolment(c: Container, user_id: uuid.UUID, *, session_id: uuid.UUID | None = None) -> TotpEnrolment | None:
    """The enrolment this session started and not confirmed yet, to show again; None when there is none (another
    session's, one past ``SETUP_LASTS``, or 2FA is on)."""
    with unit_of_work(c.engine) as session:
        user = load_user(session, user_id)
        if not _pending_for(c, user, session_id):
            return None
        return _enrolment(otp.secret_of(c, user), user.email)


def recovery_codes_left(c: Container, user_id: uuid.UUID) -> int:
    """How many recovery codes the user has not used yet (none while two-factor is off)."""
    with unit_of_work(c.engine) as session:
        return otp.codes_left(session, load_user(session, user_id).id)


QR_LABEL = "QR code to scan with your authenticator app"


def _enrolment(secret: str, email: str) -> TotpEnrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    # dark on white with its quiet zone whatever the page's theme; an <img> with alt text, as the page's
    # HTML sanitiser drops inline SVG and st.image leaves alt empty
    svg = segno.make(uri, error="m").svg_data_uri(scale=4, dark="#000", light="#fff")
    qr = f'<img src="{html.escape(svg)}" alt="{QR_LABEL}" width="220" height="220">'
    return TotpEnrolment(secret=secret, uri=uri, qr_html=qr)


def confirm_totp(
    c: Container, user_id: uuid.UUID, *, code: str, password: str, current_token: str | None = None, ip: str = ""
) -> list[str]:
    """Switch 2FA on once a code from the app proves the pending secret was scanned; returns 10 recovery codes.

    It needs the password too: a stolen session alone must not be able to put the account's second
    factor (and with it the admin page) on the thief's phone. Every other session ends: none of them
    proved the second factor, so a session stolen earlier does not become a two-factor one.
    """
    now = c.clock()
    digits = otp.clean_code(code)
    p = Pending()
    codes: list[str] = []
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if user.totp_enabled:
            raise InputError("Two-factor sign-in is already on.")
        if not _pending_for(c, user, sessions.find_id(session, current_token, user.id) if current_token else None):
            raise InputError("The setup expired; start again to get a new QR code.")
        _require_confirmed_address(user)
        steps = otp.matching_step(otp.secret_of(c, user), digits, now) if digits else []
        if not reauth(session, c, user, p, action="two-factor setup", password=password, ip=ip):
            pass  # the wrong password is parked in ``p`` (and counted like a failed sign-in)
        elif not steps:
            audit.record(
                session, event="totp_failed", user_id=user.id, ip=ip, detail="while setting up two-factor", at=now
            )
            p.fail(InputError("That code does not match. Enter the 6-digit code your app shows now."))
        else:
            user.totp_enabled = True
            user.totp_last_step = max(steps)
            user.totp_pending_session_id = user.totp_pending_at = None
            codes = otp.new_recovery_codes(session, user.id)
            ended = sessions.revoke_all(session, user.id, now, keep=sessions.find_id(session, current_token, user.id))
            detail = audit.sessions_ended(ended)
            audit.record(session, event="totp_enabled", user_id=user.id, ip=ip, detail=detail, at=now)
            p.mail(
                session,
                c,
                user.id,
                notices.notice(user.email, "two-factor sign-in is on", "Two-factor sign-in was turned on", now),
            )
    p.finish(c)
    return codes


def disable_totp(c: Container, user_id: uuid.UUID, *, password: str, code: str, ip: str = "") -> None:
    """Turn 2FA off; needs the password and a current code (or a recovery code)."""
    now = c.clock()
    p = Pending()
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if not user.totp_enabled:
            raise InputError("Two-factor sign-in is already off.")
        if reauth(session, c, user, p, action="two-factor off", password=password, code=code, need_code=True, ip=ip):
            user.totp_enabled = False
            user.totp_secret_enc = None
            user.totp_last_step = None
            user.totp_pending_session_id = user.totp_pending_at = None
            otp.drop_recovery_codes(session, user.id)
            audit.record(session, event="totp_disabled", user_id=user.id, ip=ip, at=now)
            p.mail(
                session,
                c,
                user.id,
                notices.notice(user.email, "two-factor sign-in is off", "Two-factor sign-in was turned off", now),
            )
    p.finish(c)


def regenerate_recovery_codes(c: Container, user_id: uuid.UUID, *, password: str, code: str, ip: str = "") -> list[str]:
    """Ten new recovery codes (the old ones stop working); needs the password and a code."""
    p = Pending()
    codes: list[str] = []
    with unit_of_work(c.engine, immediate=True) as session:
        user = load_user(session, user_id, lock=True)
        if not user.totp_enabled:
            raise InputError("Turn on two-factor sign-in first.")
        if reauth(session, c, user, p, action="new recovery codes", password=password, code=code, need_code=True,
                  ip=ip):  # fmt: skip
            codes = otp.new_recovery_codes(session, user.id)
            audit.record(session, event="recovery_codes_regenerated", user_id=user.id, ip=ip, at=c.clock())
            p.mail(
                session,
                c,
                user.id,
                notices.notice(
                    user.email, "new recovery codes", "New recovery codes were made; old ones stopped", c.clock()
                ),
            )
    p.finish(c)
    return codes
