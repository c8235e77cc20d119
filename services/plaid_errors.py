"""Plaid's failures as our exceptions (``error_from_body`` decodes them), rooted at ``services.errors.FinsyncError``::

PlaidError                       any Plaid failure; ``code``, ``request_id``, ``display_message``, ``retry_after``
├── LoginRequired                ITEM_LOGIN_REQUIRED: send the user through Link update mode
├── RateLimited                  error_type RATE_LIMIT_EXCEEDED (HTTP 429): back off
├── InstitutionDown              INSTITUTION_DOWN / INSTITUTION_NOT_RESPONDING: retry later
├── InvalidRequest               INVALID_REQUEST / INVALID_INPUT (bad keys, token, field)
├── MutationDuringPagination     restart the sync loop from its starting cursor
└── Transient                    5xx, network failure or garbled response: retry later
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from services.errors import FinsyncError

MAX_RETRY_AFTER = 300.0  # seconds; a longer (or hostile) Retry-After is read as this, never as hours
_DELTA_SECONDS = re.compile(r"[0-9]+")
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]")
CODE_MAX = 64  # sync_runs.error_code, item_sync_state.error_code


class PlaidError(FinsyncError):
    """Plaid refused or failed a call; `code` is Plaid's error_code, never a token."""

    default_message = "The bank connection service reported a problem. Please try again later."

    def __init__(
        self,
        code: str,
        request_id: str | None = None,
        display_message: str | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.request_id = request_id
        self.display_message = display_message
        self.http_status = http_status
        self.error_type = error_type
        self.retry_after = retry_after  # seconds the answer's Retry-After asked us to wait, if it sent one
        super().__init__(f"{display_message or self.default_message} ({code}, request {request_id or 'n/a'})")


class LoginRequired(PlaidError):
    """The bank needs the user to sign in again (Link update mode)."""

    default_message = "Your bank needs you to sign in again to keep syncing."


class RateLimited(PlaidError):
    """Too many calls for this item or client; back off."""

    default_message = "Too many requests to the bank connection service; try again in a minute."


class InstitutionDown(PlaidError):
    """The institution is not responding."""

    default_message = "Your bank is not responding right now; try again later."


class InvalidRequest(PlaidError):
    """Plaid rejected the request itself (keys, token or a field)."""

    default_message = "The bank connection service rejected the request; check the Plaid settings or relink."


class MutationDuringPagination(PlaidError):
    """Data changed mid-pagination: restart the sync from its starting cursor."""

    default_message = "Transactions changed while syncing; the sync will restart."


class Transient(PlaidError):
    """A server error, network failure or unreadable response; retry later."""

    default_message = "The bank connection service is temporarily unavailable; try again later."


# ITEM_ERROR codes of a linked item that only its owner can clear, at the bank and then through Link's update mode
# (Plaid: "The error can be resolved by having the user go through Link's update mode"): the connection waits for a
# repair, like ITEM_LOGIN_REQUIRED, instead of being retried as if it would pass.
UPDATE_MODE_FIXES = frozenset({
    "ITEM_LOGIN_REQUIRED", "INVALID_CREDENTIALS", "INVALID_MFA", "INSUFFICIENT_CREDENTIALS", "ITEM_LOCKED",
    "PASSWORD_RESET_REQUIRED", "USER_SETUP_REQUIRED", "ACCESS_NOT_GRANTED", "NO_ACCOUNTS",
})  # fmt: skip

# ITEM_ERROR codes of an item whose access the user withdrew (at the bank, or at my.plaid.com): Plaid answers every call
# for it so from then on, and "once access to an Item has been revoked, it cannot be restored"; no sign-in repairs it,
# only removing it and linking the bank again does (plaid.com/docs/errors/item/#item_not_found).
ACCESS_WITHDRAWN = frozenset({"ITEM_NOT_FOUND", "USER_PERMISSION_REVOKED"})
# Codes that say Plaid will not serve this item's transactions at all any more (the institution stopped offering the
# product through Plaid, or Plaid stopped supporting the institution): retrying cannot help, nor can Link.
NOT_OFFERED = frozenset({"PRODUCTS_NOT_SUPPORTED", "INSTITUTION_NO_LONGER_SUPPORTED"})

_BY_CODE: dict[str, type[PlaidError]] = {
    **dict.fromkeys(UPDATE_MODE_FIXES, LoginRequired),
    "INSTITUTION_DOWN": InstitutionDown,
    "INSTITUTION_NOT_RESPONDING": InstitutionDown,
    "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION": MutationDuringPagination,
}
_BY_TYPE: dict[str, type[PlaidError]] = {
    "RATE_LIMIT_EXCEEDED": RateLimited,
    "INVALID_REQUEST": InvalidRequest,
    "INVALID_INPUT": InvalidRequest,
    "API_ERROR": Transient,
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 10.2.3), clamped to 0..300; None if unreadable."""
    text = (value or "").strip()
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


def _word(value: object) -> str:
    return _NOT_WORD.sub("", value)[:CODE_MAX] if isinstance(value, str) else ""


def error_from_body(status: int, body: str | bytes | None, retry_after: float | None = None) -> PlaidError:
    """Decode Plaid's error body into our exception tree (falls back on the HTTP status)."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    # Plaid's codes and types are short upper-case words; anything else (a proxy's page, a hostile body) is cut to
    # what fits the columns that store it (64), so recording the failure cannot fail in its turn.
    code = _word(data.get("error_code")) or f"HTTP_{status}"
    etype = _word(data.get("error_type"))
    cls = _BY_CODE.get(code) or _BY_TYPE.get(etype)
    if cls is None:
        cls = RateLimited if status == 429 else Transient if status >= 500 or status == 0 else PlaidError
    display = data.get("display_message")
    request_id = data.get("request_id")
    return cls(
        code,
        request_id=str(request_id) if request_id else None,
        display_message=str(display) if display else None,
        http_status=status,
        error_type=etype or None,
        retry_after=retry_after,
    )
