"""Single-use tokens (verification, reset, TOTP challenge, sign-in ticket): only the SHA-256 is stored."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from models import OneTimeToken, User
from services.keys import token_hash

VERIFY = "verify"
EMAIL_CHANGE = "email_change"
RESET = "reset"
CHALLENGE = "totp_challenge"
TICKET = "ticket"

TTL = {
    VERIFY: timedelta(hours=48),
    EMAIL_CHANGE: timedelta(hours=48),
    RESET: timedelta(minutes=30),
    CHALLENGE: timedelta(minutes=5),
    TICKET: timedelta(seconds=60),
}
MAX_TOKEN_CHARS = 128


def issue(session: Session, user_id: uuid.UUID, purpose: str, now: datetime, payload: str | None = None) -> str:
    """A new random token (256 bits); returns the raw value, stores its hash."""
    raw = secrets.token_urlsafe(32)
    session.add(
        OneTimeToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(raw),
            payload=payload,
            created_at=now,
            expires_at=now + TTL[purpose],
        )
    )
    return raw


def find(
    session: Session, raw: object, purposes: Iterable[str], now: datetime, *, lock: bool = True
) -> OneTimeToken | None:
    """The live token for ``raw`` (unused, unexpired, of one of ``purposes``), locked for update unless ``lock`` is
    False; read afresh, so a second look after waiting for another lock sees what was committed meanwhile."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN_CHARS:
        return None
    query = select(OneTimeToken).where(col(OneTimeToken.token_hash) == token_hash(raw.strip()))
    query = query.with_for_update() if lock else query
    row: OneTimeToken | None = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None or row.purpose not in set(purposes) or row.used_at is not None or now >= row.expires_at:
        return None
    return row


def claim(
    session: Session, raw: object, purposes: Iterable[str], now: datetime
) -> tuple[OneTimeToken, User] | tuple[None, None]:
    """The live token for ``raw`` and its owner, both locked: the owner first.

    Every flow that ends an account's tokens (a reset, a password change, an admin's sign-out or disabling) locks
    the account, then the tokens. A flow spending a token locked the token, then the account: on PostgreSQL the two
    deadlocked and one failed with a database error. Taken in the same order, they queue, and the second sees what
    the first committed (a token ended meanwhile is not found)."""
    row = find(session, raw, purposes, now, lock=False)
    user = session.get(User, row.user_id, with_for_update=True) if row is not None else None
    row = find(session, raw, purposes, now) if user is not None else None
    return (row, user) if row is not None and user is not None else (None, None)


def revoke(session: Session, user_id: uuid.UUID, purposes: Iterable[str], now: datetime) -> None:
    """Mark every unused token of these purposes as used (a newer one or a credential change wins)."""
    session.execute(
        update(OneTimeToken)
        .where(col(OneTimeToken.user_id) == user_id)
        .where(col(OneTimeToken.purpose).in_(list(purposes)))
        .where(col(OneTimeToken.used_at).is_(None))
        .values(used_at=now)
    )


def latest_live(session: Session, user_id: uuid.UUID, purpose: str, now: datetime) -> OneTimeToken | None:
    """The user's newest unused, unexpired token of ``purpose``, if any."""
    return session.execute(
        select(OneTimeToken)
        .where(col(OneTimeToken.user_id) == user_id, col(OneTimeToken.purpose) == purpose)
        .where(col(OneTimeToken.used_at).is_(None), col(OneTimeToken.expires_at) > now)
        .order_by(col(OneTimeToken.created_at).desc())
        .limit(1)
    ).scalar_one_or_none()


def latest_created(session: Session, user_id: uuid.UUID, purpose: str) -> datetime | None:
    row = session.execute(
        select(OneTimeToken)
        .where(col(OneTimeToken.user_id) == user_id)
        .where(col(OneTimeToken.purpose) == purpose)
        .order_by(col(OneTimeToken.created_at).desc())
        .limit(1)
    ).scalar_one_or_none()
    return row.created_at if row is not None else None
