"""Checking second-factor codes: TOTP steps (never accepted twice) and single-use recovery codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime
from typing import Literal

import pyotp
from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from models import RecoveryCode, User
from services.container import Container

STEP_SECONDS = 30
# RFC 6238 section 5.2: one step either side absorbs clock drift and typing time (the rule).
WINDOW = (-1, 0, 1)
RECOVERY_CODES = 10
RECOVERY_BYTES = 16
RECOVERY_CHARS = 25  # of base32: 125 bits, written as five groups of five (``abcde-fghij-klmno-pqrst-uvwxy``)
_DIGITS = re.compile(r"[0-9]{6}")
_RECOVERY = re.compile(r"[a-z2-7]{25,26}")  # 25 now; 26 in codes issued before
MAX_INPUT = 64

Check = Literal["totp", "recovery", "replay", "bad"]


def clean_code(code: object) -> str | None:
    """Six ASCII digits after removing spaces, else None; checked before pyotp sees it.

    pyotp NFKC-normalises, so fullwidth digits would verify; ints and huge strings are refused too.
    """
    if not isinstance(code, str) or len(code) > MAX_INPUT:
        return None
    text = code.replace(" ", "")
    return text if _DIGITS.fullmatch(text) else None


def clean_recovery(code: object) -> str | None:
    if not isinstance(code, str) or len(code) > MAX_INPUT:
        return None
    text = code.replace(" ", "").replace("-", "").lower()
    return text if _RECOVERY.fullmatch(text) else None


def step_of(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime) -> list[int]:
    """Every step in the window whose code equals ``code`` (compared in constant time)."""
    totp = pyotp.TOTP(secret)
    current = step_of(now)
    return [
        current + offset for offset in WINDOW if hmac.compare_digest(totp.at((current + offset) * STEP_SECONDS), code)
    ]


def secret_of(c: Container, user: User) -> str:
    assert user.totp_secret_enc is not None
    return c.cipher.decrypt_text(
        user.totp_secret_enc, table="users", column="totp_secret_enc", row_id=user.id, owner=user.id
    )


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def drop_recovery_codes(session: Session, user_id: uuid.UUID) -> None:
    session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))


def new_recovery_codes(session: Session, user_id: uuid.UUID) -> list[str]:
    """Replace the user's recovery codes with 10 fresh ones; returns them formatted, stores hashes."""
    drop_recovery_codes(session, user_id)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = base64.b32encode(secrets.token_bytes(RECOVERY_BYTES)).decode()[:RECOVERY_CHARS].lower()
        session.add(RecoveryCode(user_id=user_id, code_hash=_hash(raw)))
        codes.append("-".join(raw[i : i + 5] for i in range(0, len(raw), 5)))
    return codes


def codes_left(session: Session, user_id: uuid.UUID) -> int:
    """How many of the user's recovery codes are unused."""
    query = select(func.count()).where(col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
    return int(session.execute(query).scalar_one())


def _use_recovery(session: Session, user: User, code: str, now: datetime) -> bool:
    row = session.execute(
        select(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user.id)
        .where(col(RecoveryCode.code_hash) == _hash(code))
        .with_for_update()
    ).scalar_one_or_none()
    if row is None or row.used_at is not None:
        return False
    row.used_at = now
    return True


def check(session: Session, c: Container, user: User, code: object, now: datetime) -> Check:
    """Verify a TOTP or recovery code for a user with 2FA on, consuming it on success."""
    digits = clean_code(code)
    if digits is not None and user.totp_enabled and user.totp_secret_enc is not None:
        steps = matching_step(secret_of(c, user), digits, now)
        last = user.totp_last_step if user.totp_last_step is not None else -1
        fresh = [s for s in steps if s > last]
        if fresh:
            user.totp_last_step = max(fresh)
            return "totp"
        return "replay" if steps else "bad"
    recovery = clean_recovery(code)
    if recovery is not None and _use_recovery(session, user, recovery, now):
        return "recovery"
    return "bad"
