"""One run's bookkeeping: counters and progress, the ways a run stops early, and retries of a Plaid call."""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.errors import FinsyncError
from services.plaid_errors import RateLimited, Transient
from services.plaid_types import CallEvent, Unreadable
from services.sync_types import RetryPolicy, SyncProgress

log = logging.getLogger("finsync.sync")
T = TypeVar("T")
Progress = Callable[[SyncProgress], None]


class LeaseLost(FinsyncError):
    """Another process took over the item (our lease expired) or moved its cursor."""


class TooManyPages(FinsyncError):
    """The run paged beyond MAX_PAGES."""


@dataclass
class RunCounters:
    """Counters of one run."""

    run_id: uuid.UUID
    item_id: uuid.UUID
    owner: str
    progress: Progress | None
    pages: int = 0
    restarts: int = 0
    retries: int = 0
    waited: float = 0.0  # seconds slept before retries, across the run's calls
    fetched: int = 0
    events: list[CallEvent] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)  # set aside by this attempt of the run

    @property
    def request_ids(self) -> list[str]:
        return [e.request_id for e in self.events if e.request_id]

    def report(self, stage: Any, applied: int = 0) -> None:
        if self.progress is None:
            return
        try:
            self.progress(SyncProgress(self.item_id, stage, self.pages, self.fetched, applied))
        except Exception:  # a broken progress bar must not break the sync
            log.exception("sync progress callback failed")


class Pacer:
    """At most ``policy.pages_per_minute`` calls in any 60 seconds: waits (with the policy's sleep) before a call
    that would exceed it. Not a retry: its waits count against no budget."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.calls: collections.deque[float] = collections.deque()

    def wait(self) -> None:
        limit = self.policy.pages_per_minute
        if limit is None:
            return
        now = self.policy.clock()
        while self.calls and self.calls[0] <= now - 60.0:
            self.calls.popleft()
        if len(self.calls) >= limit:
            wait = self.calls.popleft() + 60.0 - now
            if wait > 0.001:  # not for the float noise of a window that has just passed
                self.policy.sleep(wait)
        self.calls.append(max(now, self.policy.clock()))


def retrying(call: Callable[[], T], policy: RetryPolicy, run: RunCounters) -> T:
    """Absorb 429s and transient failures with jittered backoff (at least any Retry-After), within the policy's
    budgets for this call and for the whole run."""
    attempt = 0
    waited = 0.0
    while True:
        try:
            return call()
        except (RateLimited, Transient) as exc:
            wait = policy.delay(attempt, exc.retry_after)
            if (
                attempt >= policy.retries
                or waited + wait > policy.budget_seconds
                or run.waited + wait > policy.run_budget_seconds
            ):
                raise
            policy.sleep(wait)
            waited += wait
            run.waited += wait
            attempt += 1
            run.retries += 1
