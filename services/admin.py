"""What an admin may do: see accounts (metadata only), unlock, sign out, disable, read the audit log and outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from models import ThrottleCounter, User
from services import audit, mail_queue, revocations, sessions, throttle, tokens
from services.audit import AuditView
from services.bot_health import BotHealth, current_health
from services.container import Container
from services.db import unit_of_work
from services.errors import AdminOnly, InputError, NotFound, PermissionDenied
from services.mail_queue import QueuedMailView
from services.revocations import RevocationView
from services.users import UserPublic

MAX_OUTBOX = 500
ADMIN_NEEDS_TOTP = "Admin functions need two-factor sign-in. Turn it on in Settings → Two-factor."


@dataclass(frozen=True)
class AdminUserRow(UserPublic):
    """One account as the admin page lists it (a user's public fields and any sign-in pause)."""

    locked_until: datetime | None = None
    stopped: bool = False  # the lock after 100 failures in a row: only a reset or an unlock lifts it


@dataclass(frozen=True)
class OutboxMessage:
    """The headers of one `.eml` file in the outbox (bodies hold live links, so they are not listed)."""

    name: str
    to: str
    subject: str
    date: datetime | None


def _row(user: User, until: datetime | None, now: datetime) -> AdminUserRow:
    stopped = until is not None and throttle.is_hard_stop(until, now)
    return AdminUserRow(**vars(UserPublic.of(user)), locked_until=until, stopped=stopped)


def _admin(session: Session, actor_id: uuid.UUID) -> User:
    """The acting admin: role admin, active, and two-factor on (security bar F3), else ``PermissionDenied``."""
    actor = session.get(User, actor_id) if isinstance(actor_id, uuid.UUID) else None
    if actor is None or actor.role != "admin" or actor.status != "active":
        raise AdminOnly("Only an administrator can do this.", user_id=actor_id, what="an admin function")
    if not actor.totp_enabled:
        raise PermissionDenied(ADMIN_NEEDS_TOTP)
    return actor


def _acting_on(session: Session, actor_id: uuid.UUID, user_id: uuid.UUID) -> tuple[User, User]:
    """The acting admin and the account acted on, both rows locked (in id order: two admins acting on each other at
    once wait in turn rather than deadlock), so an admin disabled a moment ago can no longer act: two admins cannot
    disable each other at once and leave none."""
    ids = [i for i in (actor_id, user_id) if isinstance(i, uuid.UUID)]
    locked = select(User).where(col(User.id).in_(ids)).order_by(col(User.id)).with_for_update()
    session.execute(locked.execution_options(populate_existing=True)).scalars().all()
    return _admin(session, actor_id), _target(session, user_id)


def _target(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id, with_for_update=True) if isinstance(user_id, uuid.UUID) else None
    if user is None:
        raise NotFound("That account does not exist.")
    return user


def list_users(c: Container, actor_id: uuid.UUID) -> list[AdminUserRow]:
    now = c.clock()
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
        locks = {
            row.key: row.locked_until
            for row in session.execute(select(ThrottleCounter).where(col(ThrottleCounter.key).startswith("acct:")))
            .scalars()
            .all()
            if row.locked_until is not None and row.locked_until > now
        }
        users = session.execute(select(User).order_by(col(User.username_norm))).scalars()
        return [_row(u, locks.get(throttle.account_key(u.id)), now) for u in users]


def unlock_user(c: Container, actor_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """End a sign-in pause now."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        actor, user = _acting_on(session, actor_id, user_id)
        throttle.clear(session, throttle.account_key(user.id))
        audit.record(session, event="admin_unlock", user_id=user.id, actor_id=actor.id, at=now)


def force_sign_out(c: Container, actor_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """End every session of the user; returns how many."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        actor, user = _acting_on(session, actor_id, user_id)
        if user.id == actor.id:
            raise InputError("That is you: use Sign out, or end your other sessions in Settings → Sessions.")
        count = sessions.revoke_all(session, user.id, now)
        detail = f"{count} session{'' if count == 1 else 's'} ended"
        audit.record(session, event="admin_sign_out", user_id=user.id, actor_id=actor.id, detail=detail, at=now)
        return count


def set_disabled(c: Container, actor_id: uuid.UUID, user_id: uuid.UUID, disabled: bool) -> None:
    """Disable (sessions end at once, sign-in refused, and every emailed link dies with them) or re-enable an
    account; never your own."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        actor, user = _acting_on(session, actor_id, user_id)
        if user.id == actor.id:
            raise InputError("You cannot disable or enable your own account.")
        user.status = "disabled" if disabled else "active"
        if disabled:
            sessions.revoke_all(session, user.id, now)
            # An account is often disabled because someone else got in: the email change, reset or verification
            # link they asked for must not come back to life when the owner's account is enabled again.
            tokens.revoke(session, user.id, (tokens.RESET, tokens.VERIFY, tokens.EMAIL_CHANGE), now)
        event = "admin_disable" if disabled else "admin_enable"
        audit.record(session, event=event, user_id=user.id, actor_id=actor.id, at=now)


def audit_log(c: Container, actor_id: uuid.UUID, limit: int = 500) -> list[AuditView]:
    """Every account's events, newest first, with user and actor ids."""
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
        return audit.recent(session, max(1, min(int(limit), 5000)))


def pending_revocations(c: Container, actor_id: uuid.UUID) -> list[RevocationView]:
    """Bank connections deleted here that Plaid has not confirmed revoking (retrying, or given up), newest first."""
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
        return revocations.unfinished(session)


def bot_health(c: Container, actor_id: uuid.UUID) -> BotHealth:
    """Whether the sync bot keeps up: its queue, its last day of work, and banks it has not synced for too long."""
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
        return current_health(c, session)


def waiting_mail(c: Container, actor_id: uuid.UUID) -> list[QueuedMailView]:
    """Mail the mailer has not taken yet (SMTP away, or the first try still to come), oldest first."""
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
        return mail_queue.waiting(session)


def _read_headers(path: Path) -> OutboxMessage:
    with path.open("rb") as handle:
        headers = BytesHeaderParser(policy=policy.default).parse(handle)
    try:
        date = parsedate_to_datetime(str(headers["Date"])) if headers["Date"] else None
    except (TypeError, ValueError):
        date = None
    return OutboxMessage(path.name, str(headers["To"] or ""), str(headers["Subject"] or ""), date)


def outbox(c: Container, actor_id: uuid.UUID) -> tuple[Path, list[OutboxMessage]]:
    """The outbox folder (mail written there when no SMTP is set) and its newest messages."""
    with unit_of_work(c.engine) as session:
        _admin(session, actor_id)
    folder = c.settings.outbox_dir
    if not folder.is_dir():
        return folder, []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_OUTBOX]
    return folder, [_read_headers(p) for p in files]
