"""Record every Plaid call in ``plaid_api_events``, tagged with the user and item it was made for."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from sqlalchemy import Engine

from models import PlaidApiEvent
from services.db import unit_of_work
from services.plaid_types import CallEvent, Recorder

log = logging.getLogger("finsync.plaid")

# Which user and item the calls in this thread of control are for; the banking service sets it.
_subject: ContextVar[tuple[uuid.UUID | None, uuid.UUID | None]] = ContextVar("plaid_subject", default=(None, None))


@contextmanager
def calls_for(user_id: uuid.UUID | None, item_id: uuid.UUID | None = None) -> Iterator[None]:
    """Tag the Plaid calls made inside the block with this user and item."""
    token = _subject.set((user_id, item_id))
    try:
        yield
    finally:
        _subject.reset(token)


class DatabaseRecorder:
    """Writes each ``CallEvent`` in its own short unit of work (so a rolled-back service keeps its trail)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def __call__(self, event: CallEvent) -> None:
        user_id, item_id = _subject.get()
        with unit_of_work(self._engine) as session:
            session.add(
                PlaidApiEvent(
                    at=self._clock(),
                    user_id=user_id,
                    item_id=item_id,
                    endpoint=event.endpoint[:64],
                    request_id=(event.request_id or None) and str(event.request_id)[:64],
                    duration_ms=event.duration_ms,
                    http_status=event.http_status,
                    error_code=(event.error_code or None) and str(event.error_code)[:64],
                )
            )


def tee(*recorders: Recorder | None) -> Recorder:
    """One recorder that hands each event to every given recorder."""
    chosen = [r for r in recorders if r is not None]

    def record(event: CallEvent) -> None:
        for recorder in chosen:
            recorder(event)

    return record
