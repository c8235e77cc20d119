"""Server-side sessions: the cookie holds a random token, the database only its SHA-256.

Timeouts (ASVS 7.1.1): idle ``SESSION_IDLE_MINUTES`` (30) and absolute ``SESSION_ABSOLUTE_HOURS`` (12),
after NIST 800-63B rev 3 AAL2. ``last_seen_at`` is written at most once a minute, so a session may
end up to a minute before its exact idle deadline, never after it. Concurrent sessions are allowed;
users list and revoke them.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from models import AuthSession, User
from services import audit, tokens
from services.container import Container
from services.db import unit_of_work
from services.errors import NotFound, NotYours
from services.keys import token_hash
from services.users import UserPublic

TOUCH_EVERY = timedelta(minutes=1)
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class SessionView:
    """The signed-in user behind a cookie."""

    session_id: uuid.UUID
    user: UserPublic


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's live sessions, for the "where you are signed in" list."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    current: bool


def create(session: Session, c: Container, user: User, *, ip: str, user_agent: str, now: datetime) -> str:
    """A new session row for ``user``; returns the raw token (256 bits) for the cookie."""
    raw = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            user_id=user.id,
            token_hash=token_hash(raw),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=c.settings.session_absolute_hours),
            ip=audit.clean_ip(ip),
            user_agent=audit.clean_text(user_agent, 256),
        )
    )
    return raw


def _live(row: AuthSession, c: Container, now: datetime) -> bool:
    idle = timedelta(minutes=c.settings.session_idle_minutes)
    return row.revoked_at is None and now < row.expires_at and now - row.last_seen_at < idle


def _by_token(session: Session, token: object) -> AuthSession | None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return session.execute(
        select(AuthSession).where(col(AuthSession.token_hash) == token_hash(token))
    ).scalar_one_or_none()


def find_id(session: Session, token: object, user_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the user's own session behind ``token``, if any."""
    row = _by_token(session, token)
    return row.id if row is not None and row.user_id == user_id else None


def revoke_all(session: Session, user_id: uuid.UUID, now: datetime, *, keep: uuid.UUID | None = None) -> int:
    """Revoke every live session of the user except ``keep``; returns how many.

    Sign-ins still under way go too (a hand-off ticket not yet exchanged for its cookie, a sign-in waiting for its
    code): kept back, one would otherwise open a fresh session after "sign out everywhere" or a new password.
    """
    tokens.revoke(session, user_id, (tokens.TICKET, tokens.CHALLENGE), now)
    query = (
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id)
        .where(col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    if keep is not None:
        query = query.where(col(AuthSession.id) != keep)
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def current_user(c: Container, token: str | None, *, touch: bool = True) -> SessionView | None:
    """The user of a live session, or None (unknown, revoked, idle, too old, or the user is disabled). ``touch``:
    the request is the user's doing and moves the idle deadline; a page refreshing itself on a timer is not."""
    now = c.clock()
    with unit_of_work(c.engine) as session:
        row = _by_token(session, token)
        if row is None or not _live(row, c, now):
            return None
        user = session.get(User, row.user_id)
        if user is None or user.status != "active":
            return None
        seen = SessionView(session_id=row.id, user=UserPublic.of(user))
        stale = touch and now - row.last_seen_at >= TOUCH_EVERY
    if stale:
        # Its own write: SQLite refuses at once a read transaction that tries to write after another connection
        # (a sync, a webhook) committed since it began ("database is locked"); a fresh one waits its turn.
        with unit_of_work(c.engine) as session:
            session.execute(
                update(AuthSession)
                .where(col(AuthSession.id) == seen.session_id, col(AuthSession.last_seen_at) < now)
                .values(last_seen_at=now)
            )
    return seen


def sign_out(c: Container, token: str) -> None:
    """Revoke the session behind ``token`` (nothing happens for an unknown token)."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = _by_token(session, token)
        if row is None or row.revoked_at is not None:
            return
        row.revoked_at = now
        audit.record(session, event="sign_out", user_id=row.user_id, ip=row.ip, at=now)


def list_sessions(c: Container, user_id: uuid.UUID, current_token: str | None) -> list[SessionInfo]:
    """The user's live sessions, newest first."""
    now = c.clock()
    current_hash = token_hash(current_token) if isinstance(current_token, str) and current_token else ""
    with unit_of_work(c.engine) as session:
        rows = session.execute(
            select(AuthSession)
            .where(col(AuthSession.user_id) == user_id)
            .where(col(AuthSession.revoked_at).is_(None))
            .order_by(col(AuthSession.created_at).desc())
        ).scalars()
        return [
            SessionInfo(r.id, r.created_at, r.last_seen_at, r.ip, r.user_agent, r.token_hash == current_hash)
            for r in rows
            if _live(r, c, now)
        ]


def revoke_session(c: Container, user_id: uuid.UUID, session_id: uuid.UUID, *, ip: str = "") -> None:
    """Revoke one of the user's own sessions; ``NotFound`` for anyone else's (same as a missing one)."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = session.get(AuthSession, session_id) if isinstance(session_id, uuid.UUID) else None
        gone = "That session does not exist or has already ended."
        if row is not None and row.user_id != user_id:
            raise NotYours(gone, user_id=user_id, what=f"session {session_id}")
        if row is None or row.revoked_at is not None:
            raise NotFound(gone)
        row.revoked_at = now
        audit.record(session, event="session_revoked", user_id=user_id, ip=ip, at=now, detail="one session")


def revoke_other_sessions(c: Container, user_id: uuid.UUID, current_token: str, *, ip: str = "") -> int:
    """Sign out everywhere else; returns how many sessions ended."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = _by_token(session, current_token)
        keep = row.id if row is not None and row.user_id == user_id else None
        count = revoke_all(session, user_id, now, keep=keep)
        if count:
            detail = audit.sessions_ended(count)
            audit.record(session, event="session_revoked", user_id=user_id, ip=ip, at=now, detail=detail)
        return count
