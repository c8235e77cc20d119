"""Record every Plaid call in ``plaid_api_events``, tagged with the user and item it was made for."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from models import PlaidApiEvent
from services.db import unit_of_work
from services.plaid_types import CallEvent, Recorder

log = logging.getLogger("finsync.plaid")

# Which user and item the calls in this thread of control are for; the banking service sets it.
_subject: ContextVar[tuple[uuid.UUID | None, uuid.UUID | None]] = ContextVar("plaid_subject", default=(None, None))


class EventBatch:
    """Call-log rows held back to be written inside the caller's next transaction (see ``batched_calls``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._rows: list[PlaidApiEvent] = []
        self._closed = False

    def add(self, row: PlaidApiEvent) -> bool:
        """Hold ``row``; False once the batch is closed (the caller then writes it itself)."""
        with self._lock:
            if self._closed:
                return False
            self._rows.append(row)
            return True

    def drain_into(self, session: Session) -> None:
        """Add the held rows to ``session``: they commit (or roll back) with the caller's work."""
        with self._lock:
            rows, self._rows = self._rows, []
        session.add_all(rows)

    def close(self) -> None:
        """Write what is still held in its own transaction; later rows are written one by one."""
        with self._lock:
            rows, self._rows, self._closed = self._rows, [], True
        if rows:
            with unit_of_work(self._engine) as session:
                session.add_all(rows)


_batch: ContextVar[EventBatch | None] = ContextVar("plaid_event_batch", default=None)


@contextmanager
def batched_calls(engine: Engine) -> Iterator[EventBatch]:
    """Inside the block (and threads started from its context) call-log rows wait for ``drain_into``.

    A long sync makes hundreds of calls; writing each in its own transaction costs a commit per page
    and, on SQLite, contends with the sync's own writes. Whatever is not drained is written on exit.
    """
    batch = EventBatch(engine)
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)
        try:
            batch.close()
        except Exception:  # the call log must never turn a finished run into a failure
            log.exception("could not write the held Plaid call log")


@contextmanager
def calls_for(user_id: uuid.UUID | None, item_id: uuid.UUID | None = None) -> Iterator[None]:
    """Tag the Plaid calls made inside the block with this user and item."""
    token = _subject.set((user_id, item_id))
    try:
        yield
    finally:
        _subject.reset(token)


class DatabaseRecorder:
    """Writes each ``CallEvent`` in its own short unit of work (so a rolled-back service keeps its trail).

    Inside ``batched_calls`` the row is held and written with the batch instead.
    """

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def __call__(self, event: CallEvent) -> None:
        user_id, item_id = _subject.get()
        row = PlaidApiEvent(
            at=self._clock(),
            user_id=user_id,
            item_id=item_id,
            endpoint=event.endpoint[:64],
            request_id=(event.request_id or None) and str(event.request_id)[:64],
            duration_ms=event.duration_ms,
            http_status=event.http_status,
            error_code=(event.error_code or None) and str(event.error_code)[:64],
        )
        batch = _batch.get()
        if batch is not None and batch.add(row):
            return
        with unit_of_work(self._engine) as session:
            session.add(row)


def tee(*recorders: Recorder | None) -> Recorder:
    """One recorder that hands each event to every given recorder."""
    chosen = [r for r in recorders if r is not None]

    def record(event: CallEvent) -> None:
        for recorder in chosen:
            recorder(event)

    return record
