"""Outgoing mail kept in the database until the mailer takes it: an SMTP outage delays mail, never loses it.

A flow queues its mails in its own unit of work (a rolled-back change sends nothing), tries them once
right after the commit, and leaves what failed to the scheduler and the worker, which retry from 1 minute,
doubling, to 30 minutes. A mail past its use (a reset link after the link's 30 minutes) is dropped and
audited instead of sent late, and so is one the mail server refuses for good (a mailbox that does not exist).
A claimed mail is leased for 5 minutes first, so two processes never send it twice, and a process killed
while sending (or a database that cannot cross a sent mail off) leaves it to be sent again: at least once, and
every try is the same message (one Message-ID, one outbox file), so a second hand-over is not a second email.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from models import QueuedMail
from services import audit
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError
from services.mailer import message_id_for, refused_for_good, refused_this_one
from services.notices import Mail

log = logging.getLogger("finsync.mail")
_handoff: queue.SimpleQueue[tuple[Container, list[uuid.UUID]]] = queue.SimpleQueue()
_sender_lock = threading.Lock()
_sender: threading.Thread | None = None
_handed_off = threading.Condition()  # guards _unsent: handed to the sender thread and not yet tried
_unsent = 0
TABLE, COLUMN = "mail_queue", "message_enc"
LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(minutes=30)


@dataclass(frozen=True)
class QueuedMailView:
    """One waiting mail as the admin page lists it (kind and timing, never the message)."""

    kind: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class _Claim:
    id: uuid.UUID
    mail: Mail = field(repr=False)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 1 minute, doubling, at most 30 minutes."""
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16)), MAX_RETRY)


def enqueue(session: Session, c: Container, mail: Mail, *, user_id: uuid.UUID | None = None) -> uuid.UUID:
    """Queue ``mail`` in the caller's unit of work; ``user_id`` ties it to an account (deleted with it)."""
    now = c.clock()
    row = QueuedMail(user_id=user_id, kind=mail.kind[:32], message_enc=b"", created_at=now,
                     next_attempt_at=now, expires_at=now + mail.lifetime)  # fmt: skip
    message = json.dumps({"to": mail.to, "subject": mail.subject, "body": mail.body})
    row.message_enc = c.cipher.encrypt(message, table=TABLE, column=COLUMN, row_id=row.id, owner=user_id)
    session.add(row)
    return row.id


def _drop(session: Session, row: QueuedMail, why: str, now: datetime) -> None:
    detail = f"{row.kind} mail; {row.attempts} attempt(s); {why}"
    audit.record(session, event="mail_given_up", user_id=row.user_id, detail=detail, at=now)
    session.delete(row)


def _claim(c: Container, ids: list[uuid.UUID] | None) -> _Claim | None:
    """Lease the oldest due mail (of ``ids``, or any); mails past their use or unreadable are dropped on the way."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        query = select(QueuedMail).where(col(QueuedMail.next_attempt_at) <= now)
        if ids is not None:
            query = query.where(col(QueuedMail.id).in_(ids))
        query = (
            query.order_by(col(QueuedMail.next_attempt_at), col(QueuedMail.created_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        while (row := session.execute(query).scalar_one_or_none()) is not None:
            if now >= row.expires_at:
                _drop(session, row, "past its use before it could be sent", now)
                continue
            try:
                text = c.cipher.decrypt_text(row.message_enc, table=TABLE, column=COLUMN, row_id=row.id,
                                             owner=row.user_id)  # fmt: skip
            except DecryptionError:
                _drop(session, row, "unreadable (moved, altered or its key is gone)", now)
                continue
            message = json.loads(text)
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            return _Claim(row.id, Mail(message["to"], message["subject"], message["body"], row.kind))
        return None


def _settle(c: Container, claim: _Claim, error: Exception | None) -> None:
    """Sent: the row goes. Failed: it waits for its next try (the log names the kind and error type only)."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:  # read then write: take SQLite's lock at BEGIN
        row = session.get(QueuedMail, claim.id)
        if row is None:
            return
        if error is None:
            session.delete(row)
            return
        log.warning("mail kind=%s attempt %d failed: %s", row.kind, row.attempts, type(error).__name__)
        row.last_error = type(error).__name__[:64]
        row.next_attempt_at = now + backoff(row.attempts)


def _give_up(c: Container, claim: _Claim, why: str) -> None:
    """Drop, audited, a mail the server will never take."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = session.get(QueuedMail, claim.id)
        if row is not None:
            _drop(session, row, why, now)


def send(c: Container, ids: Iterable[uuid.UUID] | None = None, *, limit: int = 50) -> int:
    """Try due mails once each (``ids`` only and in their order when given, else oldest first); return how many were sent.

    After a failure to reach the server the rest wait for the next pass (it is likely down for all of them); a
    refusal of one mail alone (its recipient or its data) lets the rest go.
    """
    picks: Iterable[list[uuid.UUID] | None] = [[i] for i in ids] if ids is not None else [None] * limit
    sent = 0
    for pick in picks:
        claim = _claim(c, pick)
        if claim is None:
            if pick is None:
                break
            continue
        try:
            c.mailer.send(claim.mail.to, claim.mail.subject, claim.mail.body, message_id=message_id_for(claim.id))
        except Exception as exc:  # any mailer failure: SMTP refused, timed out, disk full for the outbox
            if why := refused_for_good(exc):  # the server is up and said no to this one mail: the rest can go
                _give_up(c, claim, why)
                continue
            _settle(c, claim, exc)  # tried again later, until it is past its use
            if refused_this_one(exc):  # the server is up: one refused mail does not hold back the rest
                continue
            break
        _settle(c, claim, None)
        sent += 1
    return sent


def after_commit(c: Container, ids: list[uuid.UUID]) -> None:
    """Send a flow's just-queued mail: on a sender thread with ``c.background_mail``, else now, in this thread.

    On the thread, the request answers at once, so its time says nothing about whether a mail went out (a
    reset for an unknown address sends none) and a slow mail server slows no page. A process that ends
    before the thread sends leaves the rows to the scheduler.
    """
    if not ids:
        return
    if not c.background_mail:
        send_quietly(c, ids)
        return
    global _unsent  # noqa: PLW0603 - counts what the one sender thread still has to try
    with _handed_off:
        _unsent += 1
    _handoff.put((c, ids))
    with _sender_lock:
        global _sender  # noqa: PLW0603 - one sender thread per process
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_handed_off, name="finsync-mail", daemon=True)
            _sender.start()


def _send_handed_off() -> None:
    global _unsent  # noqa: PLW0603
    while True:
        c, ids = _handoff.get()
        try:
            send_quietly(c, ids)
        finally:
            with _handed_off:
                _unsent -= 1
                _handed_off.notify_all()


def wait_handed_off(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until the sender thread has tried (sent or put back) every mail handed to it.

    False when some are still unsent. For tests: the app's sender thread lives as long as its process, and a
    command sends its mail in its own thread (``command_container``), so nothing else needs to wait.
    """
    with _handed_off:
        return _handed_off.wait_for(lambda: _unsent == 0, timeout)


def send_quietly(c: Container, ids: Iterable[uuid.UUID] | None = None) -> int:
    """``send`` for flows, the scheduler and the worker: a failure is logged, never raised; the mail stays queued."""
    try:
        return send(c, ids)
    except Exception:  # the database may be away: the rows (if committed) wait for the next pass
        log.exception("sending queued mail failed")
        return 0


def waiting(session: Session) -> list[QueuedMailView]:
    """Every mail not sent yet, oldest first."""
    rows = session.execute(select(QueuedMail).order_by(col(QueuedMail.created_at))).scalars()
    return [
        QueuedMailView(r.kind, r.attempts, r.last_error, r.created_at, r.next_attempt_at, r.expires_at) for r in rows
    ]
