"""What the sync bot hands to pages and the CLI: frozen results, and failures explained in plain words."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.banking_views import BANK_WANTS

SyncStatus = Literal["ok", "preparing", "already_syncing", "failed", "login_required"]

MAX_RESTARTS = 3  # mutation during pagination: attempts of the loop before giving up (SECURITY_BAR M3: ≤3)
MAX_UNREADABLE = 100  # transactions one run may set aside; more means a broken response, not a bad row
# A run that pages forever stops here, cursor and ledger unchanged (SECURITY_BAR M10). The bar suggests 200
# pages (100,000 transactions), but a first sync of a busy account's two years is one run and must fit: the
# sync issue's benchmark is a 200,000-transaction first sync. 1,000 pages = 500,000 transactions.
MAX_PAGES = 1000
LEASE_SECONDS = 600
PREPARING_RETRY_MINUTES = 10
LOGIN_PROBE_HOURS = 24
SIGN_IN_STALE_MINUTES = 60
PLAID_PAGES_PER_MINUTE = 45  # /transactions/sync calls a minute per item, under Plaid's limit of 50


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with full jitter for 429s and transient failures, within a budget of retries and seconds per call.

    SECURITY_BAR L8: base 1 s, cap 60 s, at most 5 attempts, and a Retry-After is honoured. A wait that the
    call's remaining ``budget_seconds``, or the run's remaining ``run_budget_seconds``, cannot cover fails the
    call instead: the run stops with nothing applied and the scheduler tries the item again later. The run's
    budget keeps a bank that throttles every page from holding a worker (and the item) for an hour.
    """

    retries: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    budget_seconds: float = 120.0
    run_budget_seconds: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    # Plaid allows 50 /transactions/sync calls a minute per item (PLAID_NOTES §6) and says nothing of when to come
    # back: a first sync of a long history (400 pages for 200,000 transactions) keeps under it instead of meeting
    # 429s its retries cannot outwait. None: no pacing (the demo bank has no such limit).
    pages_per_minute: int | None = None
    clock: Callable[[], float] = time.monotonic

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): full jitter, but never less than Retry-After.

        See AWS's "Exponential Backoff And Jitter".
        """
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempt)
        return max(random.uniform(0, ceiling), retry_after or 0.0)  # noqa: S311 - jitter, not a secret


def default_policy(plaid_env: str) -> RetryPolicy:
    """The policy of a real sync: paced under Plaid's per-item limit, except against the demo bank."""
    return RetryPolicy(pages_per_minute=None if plaid_env == "demo" else PLAID_PAGES_PER_MINUTE)


@dataclass(frozen=True)
class SyncProgress:
    """Reported while a sync runs: pages fetched so far, then transactions applied."""

    item_id: uuid.UUID
    stage: Literal["fetching", "applying", "done"]
    pages: int
    fetched: int
    applied: int


@dataclass(frozen=True)
class SyncResult:
    """How one item's sync ended; ``message`` is plain words with the fix."""

    item_id: uuid.UUID
    status: SyncStatus
    institution_name: str = ""
    pages: int = 0
    added: int = 0
    modified: int = 0
    removed: int = 0
    error_code: str | None = None
    message: str = ""
    run_id: uuid.UUID | None = None

    @property
    def ok(self) -> bool:
        """True when the item is up to date or simply not ready yet."""
        return self.status in ("ok", "preparing")

    def summary(self) -> str:
        """One line for the CLI and logs."""
        name = self.institution_name or str(self.item_id)
        if self.status == "ok":
            line = f"{name}: ok, {self.pages} page(s), {self.added} added, {self.modified} modified, {self.removed} removed"
            return f"{line}; {self.message}" if self.message else line
        return f"{name}: {self.status.replace('_', ' ')}: {self.message}"


@dataclass(frozen=True)
class ItemSyncStatus:
    """What the Accounts page shows per connection."""

    item_id: uuid.UUID
    institution_name: str
    last_success_at: datetime | None
    next_due_at: datetime | None
    state: str
    message: str
    drift_flagged_accounts: tuple[uuid.UUID, ...] = ()
    last_attempt_at: datetime | None = None  # when the last attempt ended, whatever its outcome


@dataclass(frozen=True)
class RunView:
    """One row of the Sync history page."""

    run_id: uuid.UUID
    item_id: uuid.UUID | None  # None: a bank since removed (its history kept)
    institution_name: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    pages: int
    added: int
    modified: int
    removed: int
    error_code: str | None
    explanation: str
    fix: str
    request_ids: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ChangeView:
    """One field Plaid changed on a transaction."""

    changed_at: datetime
    field_name: str
    old_value: str | None
    new_value: str | None


_REPAIR = "“Repair connection” on this bank's card on Accounts"
_LOGIN = ("Your bank needs you to sign in again.", f"Press {_REPAIR}.")
_LATER = "Nothing to do: finsync tries again automatically."
_WITHDRAWN = (
    "Access to this bank was withdrawn (at the bank, or at Plaid), and it cannot be restored.",
    "Remove it (its card on Accounts) and link the bank again.",
)
_NOT_OFFERED = (
    "Your bank no longer makes its transactions available through Plaid, so finsync cannot sync it.",
    "Remove it (its card on Accounts); you can keep its history.",
)
_EXPLAIN: dict[str, tuple[str, str]] = {
    "ITEM_LOGIN_REQUIRED": _LOGIN,
    "INVALID_CREDENTIALS": _LOGIN,
    "INVALID_MFA": _LOGIN,
    "INSUFFICIENT_CREDENTIALS": _LOGIN,
    "PREPARING": ("Your bank is still preparing your transactions.", "Nothing to do: finsync checks again soon."),
    "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION": (
        "Your bank kept changing transactions while finsync was reading them.",
        _LATER,
    ),
    "INSTITUTION_DOWN": ("Your bank is not responding right now.", _LATER),
    "INSTITUTION_NOT_RESPONDING": ("Your bank is not responding right now.", _LATER),
    "INVALID_ACCESS_TOKEN": (
        "This connection is no longer valid at the bank.",
        "Remove it (its card on Accounts) and link the bank again.",
    ),
    "ITEM_NOT_FOUND": _WITHDRAWN,
    "USER_PERMISSION_REVOKED": _WITHDRAWN,
    "PRODUCTS_NOT_SUPPORTED": _NOT_OFFERED,
    "INSTITUTION_NO_LONGER_SUPPORTED": _NOT_OFFERED,
    "TOO_MANY_PAGES": ("The bank sent more pages than a sync may read at once.", _LATER),
    "INTERRUPTED": ("The sync was interrupted before it finished (the process stopped).", _LATER),
    "DATABASE_ERROR": ("finsync could not save the new transactions.", "Check the server's storage and logs."),
    "TOKEN_UNREADABLE": (
        "The saved connection cannot be read (the encryption keys changed or the data was altered).",
        "Remove it (its card on Accounts) and link the bank again.",
    ),
    "KEY_MISSING": (
        "This server no longer has the encryption key that protects the saved connection (an operator's change).",
        "Nothing is lost: ask the operator to put the key back in FINSYNC_ENCRYPTION_KEYS.",
    ),
    "INTERNAL_ERROR": (
        "finsync hit an unexpected error while syncing.",
        "Nothing to do: it tries again later; the operator can see why in the logs.",
    ),
    "NOT_CONFIGURED": ("Bank syncing is not configured on this server.", "Ask the operator to set the Plaid settings."),
    "TRANSACTIONS_SET_ASIDE": (
        "Your bank sent transactions finsync could not read; they were set aside and the rest synced.",
        "Nothing to do: they come in when the bank sends them readable. The operator can see why.",
    ),
    "LEDGER_DIFFERS": (
        "A check against your bank found transactions that differ from what finsync shows.",
        "Ask the operator: the server log (finsync.selfcheck) and `sync --verify` list the transactions concerned.",
    ),
}


def explain(error_code: str | None, error_type: str | None = None) -> tuple[str, str]:
    """Plain words for a failure code, and what the user (or nobody) should do about it."""
    if error_code is None:
        return "", ""
    if error_code in _EXPLAIN:
        return _EXPLAIN[error_code]
    if error_code in BANK_WANTS:
        wants = BANK_WANTS[error_code]
        return f"{wants.situation}.", wants.then(f"press {_REPAIR}")
    if error_code.endswith("_LIMIT") or error_type == "RATE_LIMIT_EXCEEDED":
        return "The bank connection service asked finsync to slow down.", _LATER
    if error_code.startswith(("INVALID_", "MISSING_", "UNKNOWN_")):
        return (
            "The bank connection service rejected finsync's request.",
            "Ask the operator to check the Plaid settings; if it persists, link the bank again.",
        )
    return "The bank connection service is temporarily unavailable.", _LATER


def explained(error_code: str | None, error_type: str | None = None) -> str:
    """``explain`` as one sentence pair."""
    what, fix = explain(error_code, error_type)
    return f"{what} {fix}".strip()
