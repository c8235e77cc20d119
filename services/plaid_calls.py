"""One gateway call measured: its time, request id and outcome reported to the recorder as a ``CallEvent``; a failed
answer read as our error."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.plaid_errors import PlaidError, Transient, error_from_body, parse_retry_after
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


def answered(meta: dict[str, Any], exc: Any) -> PlaidError:
    """Plaid's (or a proxy's) error answer (the SDK's ``ApiException``) as our error, recorded with its status and code."""
    retry_after = parse_retry_after(_header(exc.headers, "retry-after"))
    err = error_from_body(int(exc.status or 0), exc.body, retry_after)
    meta.update(request_id=err.request_id, error_code=err.code, http_status=err.http_status)
    return err


def unreadable(meta: dict[str, Any]) -> Transient:
    """An answer that came back but is not the shape Plaid documents (or not text at all)."""
    meta["error_code"] = code = "MALFORMED_RESPONSE"
    meta["http_status"] = 200
    return Transient(code, display_message="Plaid sent a response we could not read.")


def _header(headers: Any, name: str) -> str | None:
    """One header of a failed answer; the SDK gives urllib3's case-insensitive dict, or None without an answer."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None
