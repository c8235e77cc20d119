"""One gateway call measured: its time, request id and outcome reported to the recorder as a ``CallEvent``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.plaid_types import CallEvent, Recorder

log = logging.getLogger("finsync.plaid")


def report(recorder: Recorder | None, event: CallEvent) -> None:
    """Hand ``event`` to the recorder, if there is one; a recorder that fails is logged, never raised."""
    if recorder is None:
        return
    try:
        recorder(event)
    except Exception:  # recording must never turn a good call into a failure
        log.exception("could not record a Plaid call to %s", event.endpoint)


@contextmanager
def metered(recorder: Recorder | None, endpoint: str) -> Iterator[dict[str, Any]]:
    """Time the block and report it; the block fills in ``request_id``, ``error_code`` and ``http_status``."""
    started = time.perf_counter()
    meta: dict[str, Any] = {"request_id": None, "error_code": None, "http_status": None}
    try:
        yield meta
    finally:
        ms = int((time.perf_counter() - started) * 1000)
        report(recorder, CallEvent(endpoint, meta["request_id"], ms, meta["error_code"], meta["http_status"]))
