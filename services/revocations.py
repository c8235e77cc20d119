"""Revocations Plaid did not confirm: kept (token encrypted) and retried until Plaid does, or for 7 days.

A deleted item whose ``/item/remove`` failed would otherwise live on, and bill, at Plaid with no token
left here to end it. The item is deleted in the same unit of work that queues its token, so it is never
gone without either a revocation or a queued retry. Retries back off from 5 minutes, doubling, to 6 hours.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from models import PlaidRevocation
from services import audit
from services.container import Container
from services.crypto import FieldCipher
from services.db import unit_of_work
from services.errors import DecryptionError
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from services.plaid_events import calls_for

log = logging.getLogger("finsync.revocations")
TABLE, COLUMN = "plaid_revocations", "access_token_enc"
ACCOUNT_DELETION, LINK_DISCARD, BANK_REMOVAL = "account_deletion", "link_discard", "bank_removal"
PENDING, REVOKED, GIVEN_UP = "pending", "revoked", "given_up"
ALREADY_GONE = frozenset({"INVALID_ACCESS_TOKEN", "ITEM_NOT_FOUND"})  # nothing is left to revoke
UNREADABLE = "TOKEN_UNREADABLE"
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class RevocationView:
    """One queued revocation as the admin page lists it (never the token)."""

    id: uuid.UUID
    plaid_item_id: str
    institution_name: str
    reason: str
    outcome: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: PlaidRevocation) -> RevocationView:
        """The row's fields that the view has (every one but the token)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class _Claim:
    id: uuid.UUID
    token: str | None = field(repr=False)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 5 minutes, doubling, at most 6 hours."""
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16)), MAX_RETRY)


def remove_at_plaid(gw: PlaidGateway, token: str) -> str | None:
    """Call /item/remove; None when Plaid confirmed (or the item was already gone), else its error code."""
    try:
        gw.item_remove(token)
    except PlaidError as exc:
        return None if exc.code in ALREADY_GONE else exc.code[:64]
    return None


def enqueue(
    session: Session,
    cipher: FieldCipher,
    *,
    plaid_item_id: str,
    institution: str,
    token: str | None,
    reason: str,
    error: str,
    now: datetime,
) -> PlaidRevocation:
    """Queue a revocation (the caller commits); without a readable ``token`` it is given up at once, and audited."""
    row = PlaidRevocation(plaid_item_id=plaid_item_id[:128], institution_name=institution[:128], reason=reason,
                          attempts=1, last_error=error[:64], created_at=now, next_attempt_at=now + backoff(1))  # fmt: skip
    if token is None:
        _give_up(session, row, UNREADABLE, now)
    else:
        row.access_token_enc = cipher.encrypt(token, table=TABLE, column=COLUMN, row_id=row.id, owner=None)
    session.add(row)
    return row


def decrypt(cipher: FieldCipher, row: PlaidRevocation) -> str:
    """The queued token; ``DecryptionError`` if it was moved, altered, wiped or its key is gone."""
    if row.access_token_enc is None:
        raise DecryptionError(f"{TABLE}.{COLUMN}: no token is kept for a finished revocation")
    return cipher.decrypt_text(row.access_token_enc, table=TABLE, column=COLUMN, row_id=row.id, owner=None)


def _detail(row: PlaidRevocation) -> str:
    return f"{row.institution_name}; Plaid item {row.plaid_item_id}; {row.reason}; {row.attempts} attempt(s)"


def _finish(row: PlaidRevocation, outcome: str, now: datetime) -> None:
    """Done either way: the token is no longer needed, so it is not kept."""
    row.outcome, row.finished_at, row.access_token_enc = outcome, now, None


def _give_up(session: Session, row: PlaidRevocation, code: str, now: datetime) -> None:
    _finish(row, GIVEN_UP, now)
    row.last_error = code
    audit.record(session, event="bank_revocation_given_up", detail=f"{_detail(row)}; {code}", at=now)


def _claim_next(c: Container) -> _Claim | None:
    """Take the oldest due row and move its next attempt on first, so a crash or a second worker waits."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = session.execute(
            select(PlaidRevocation)
            .where(col(PlaidRevocation.outcome) == PENDING, col(PlaidRevocation.next_attempt_at) <= now)
            .order_by(col(PlaidRevocation.next_attempt_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if row is None:
            return None
        row.attempts += 1
        row.next_attempt_at = now + backoff(row.attempts)
        try:
            return _Claim(row.id, decrypt(c.cipher, row))
        except DecryptionError:
            _give_up(session, row, UNREADABLE, now)
            return _Claim(row.id, None)


def _settle(c: Container, row_id: uuid.UUID, code: str | None) -> None:
    """Record one attempt: revoked, still pending, or given up after 7 days of failures."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        row = session.get(PlaidRevocation, row_id)
        if row is None or row.outcome != PENDING:
            return
        if code is None:
            _finish(row, REVOKED, now)
            audit.record(session, event="bank_revocation_done", detail=_detail(row), at=now)
        elif now - row.created_at >= GIVE_UP_AFTER:
            _give_up(session, row, code, now)
        else:
            row.last_error = code


def retry_revocations(c: Container, *, limit: int = 20) -> int:
    """Retry up to ``limit`` due revocations, oldest due first; return how many Plaid confirmed."""
    if c.plaid is None:
        return 0
    revoked = 0
    for _ in range(limit):
        claim = _claim_next(c)
        if claim is None:
            break
        if claim.token is None:
            continue
        with calls_for(None):
            code = remove_at_plaid(c.plaid, claim.token)
        _settle(c, claim.id, code)
        revoked += code is None
        if code == "NETWORK_ERROR":
            break  # Plaid is unreachable: the rest wait for the next pass
    return revoked


def retry_quietly(c: Container) -> int:
    """``retry_revocations`` for the scheduler and the worker: a failure is logged, never raised."""
    try:
        return retry_revocations(c)
    except Exception:  # the sync pass must go on; the rows stay queued for the next one
        log.exception("retrying Plaid revocations failed")
        return 0


def unfinished(session: Session) -> list[RevocationView]:
    """Every revocation Plaid has not confirmed (pending and given up), newest first."""
    rows = session.execute(
        select(PlaidRevocation)
        .where(col(PlaidRevocation.outcome) != REVOKED)
        .order_by(col(PlaidRevocation.created_at).desc())
    ).scalars()
    return [RevocationView.of(r) for r in rows]
