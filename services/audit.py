"""The audit trail: one row per security event, mirrored to the ``finsync.auth`` logger; never a secret."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from models import AuditEvent
from services import db, safe_text
from services.container import Container
from services.db import unit_of_work
from services.errors import Denial

log = logging.getLogger("finsync.auth")

EVENTS = frozenset(
    {
        "sign_in_ok",
        "sign_in_failed",
        "account_locked",
        "ip_throttled",
        "sign_out",
        "session_revoked",
        "password_changed",
        "password_change_failed",
        "reauth_failed",
        "password_reset_requested",
        "password_reset_done",
        "email_change_requested",
        "email_change_cancelled",
        "email_changed",
        "email_change_email_taken",
        "email_verified",
        "totp_enabled",
        "totp_disabled",
        "totp_failed",
        "totp_replay",
        "recovery_code_used",
        "recovery_codes_regenerated",
        "account_deleted",
        "admin_unlock",
        "admin_sign_out",
        "admin_disable",
        "admin_enable",
        "registered",
        "registration_email_taken",
        "bank_linked",
        "bank_link_failed",
        "bank_repaired",
        "bank_removed",
        "kept_history_deleted",
        "bank_revocation_done",
        "bank_revocation_given_up",
        "transactions_exported",
        "mail_given_up",
        "access_denied",
    }
)
FAILURES = frozenset(
    {
        "sign_in_failed",
        "account_locked",
        "ip_throttled",
        "password_change_failed",
        "reauth_failed",
        "totp_failed",
        "totp_replay",
        "bank_link_failed",
        "registration_email_taken",
        "email_change_email_taken",
        "bank_revocation_given_up",
        "mail_given_up",
        "access_denied",
    }
)
MAX_DETAIL = 200
MAX_IP = 64


@dataclass(frozen=True)
class AuditView:
    """One audit row as a page shows it; ``user_id``/``actor_id`` are filled only for admins."""

    at: datetime
    event: str
    ip: str
    detail: str
    user_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None


def clean_text(text: object, limit: int = MAX_DETAIL) -> str:
    """Printable text only (``safe_text.clean``: NUL, bidi and other controls gone, line breaks as spaces), then cut."""
    return safe_text.clean(str(text)[: limit * 4])[:limit]


def clean_ip(ip: object) -> str:
    return clean_text(ip, MAX_IP).strip()


COMMAND_LINE = "from the server's command line"  # the detail's end for what an operator ran there (no address)


def from_command_line(event: AuditView) -> bool:
    """Whether the event was made with ``python -m services.cli`` on the server, not by a client (its address empty)."""
    return not event.ip and event.detail.endswith(COMMAND_LINE)


def sessions_ended(count: int, *, others: bool = True) -> str:
    """An audit detail saying how many sessions an action ended, in words ("no other session was open")."""
    other = "other " if others else ""
    if count == 0:
        return f"no {other}session was open"
    return f"{count} {other}session{'' if count == 1 else 's'} ended"


def record(
    session: Session,
    *,
    event: str,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    ip: str = "",
    detail: str = "",
    at: datetime | None = None,
) -> None:
    """Add an audit row (the caller commits) and log it; ``detail`` holds short reasons, never secrets."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    row = AuditEvent(event=event, user_id=user_id, actor_id=actor_id, ip=clean_ip(ip), detail=clean_text(detail))
    if at is not None:
        row.at = at
    session.add(row)
    result = "failure" if event in FAILURES else "ok"
    log.info(
        "auth event=%s user=%s actor=%s result=%s ip=%s detail=%s",
        event,
        user_id,
        actor_id,
        result,
        row.ip,
        row.detail,
        extra={"event": event, "user_id": str(user_id) if user_id else None, "result": result},
    )


def _record_denial(engine: Engine, exc: BaseException) -> None:
    """After a unit of work rolled back on a ``NotYours``/``AdminOnly``: write its ``access_denied`` row, once."""
    if not isinstance(exc, Denial) or exc.recorded:
        return
    exc.recorded = True
    user_id = exc.user_id if isinstance(exc.user_id, uuid.UUID) else None
    try:
        with unit_of_work(engine) as session:
            record(session, event="access_denied", user_id=user_id, detail=exc.what)
    except Exception:  # the refusal stands either way; the log keeps what the table could not
        log.exception("could not record access_denied for user %s: %s", user_id, exc.what)


db.AFTER_ROLLBACK.append(_record_denial)


def list_events(c: Container, user_id: uuid.UUID, limit: int = 200) -> list[AuditView]:
    """The signed-in user's own events, newest first."""
    limit = max(1, min(int(limit), 1000))
    with unit_of_work(c.engine) as session:
        rows = session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.user_id) == user_id)
            .order_by(col(AuditEvent.at).desc())
            .limit(limit)
        ).scalars()
        return [AuditView(at=r.at, event=r.event, ip=r.ip, detail=r.detail) for r in rows]


def last_at(session: Session, *, user_id: uuid.UUID, event: str, detail: str) -> datetime | None:
    """When ``user_id`` last had an ``event`` row with this exact ``detail`` (for flows that limit themselves)."""
    query = (
        select(func.max(col(AuditEvent.at)))
        .where(col(AuditEvent.user_id) == user_id)
        .where(col(AuditEvent.event) == event)
        .where(col(AuditEvent.detail) == detail)
    )
    latest: datetime | None = session.execute(query).scalar_one()
    return latest


def recent(session: Session, limit: int) -> list[AuditView]:
    """Every user's events, newest first, with ids (for the admin page)."""
    rows = session.execute(select(AuditEvent).order_by(col(AuditEvent.at).desc()).limit(limit)).scalars()
    return [
        AuditView(at=r.at, event=r.event, ip=r.ip, detail=r.detail, user_id=r.user_id, actor_id=r.actor_id)
        for r in rows
    ]
