"""The sync bot's clock: one daemon thread per server process that queues and runs due sync jobs."""

from __future__ import annotations

import logging
import threading

from services import mail_queue, wakeup
from services.container import Container
from services.jobs import run_due_jobs
from services.notify import flush_digests_quietly
from services.retention import DailyPurge
from services.revocations import retry_quietly
from services.sync_selfcheck import check_due
from services.sync_state import worker_name

log = logging.getLogger("finsync.scheduler")
TICK_SECONDS = 30.0

_lock = threading.Lock()
_instance: Scheduler | None = None


class Scheduler:
    """Every ``tick`` seconds, or when nudged: queue items that are due (interval, webhook, sign-in) and run their jobs."""

    def __init__(self, c: Container, *, tick: float = TICK_SECONDS, limit: int = 10) -> None:
        self.c = c
        self.tick = tick
        self.limit = limit
        self.worker_id = worker_name("scheduler")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.purge = DailyPurge()  # this process's daily retention purge

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op if it runs already); it needs no browser session."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="finsync-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish its current job and stop."""
        self._stop.set()
        wakeup.nudge()  # out of its wait now
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> int:
        """One pass: queue due items, run up to ``limit`` jobs, then (if that was all) one due self-check; retry due
        mail and Plaid revocations, purge once a day.

        Returns how many jobs ran.
        """
        try:
            ran = run_due_jobs(self.c, worker_id=self.worker_id, limit=self.limit, stop=self._stop)
            if ran < self.limit:  # a quiet pass: compare one bank's ledger with a full replay, if one is due
                check_due(self.c)
        finally:
            flush_digests_quietly(self.c)  # a digest that waited for its hour
            mail_queue.send_quietly(self.c)  # neither of these raises, so they cannot break a sync pass,
            retry_quietly(self.c)  # and they run even if syncing failed
            self.purge(self.c)  # never raises either
        self.passes += 1
        return ran

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # the database may be briefly unavailable: try again next tick
                log.exception("scheduler pass failed")
                ran = 0
            if ran < self.limit and not self._stop.is_set():
                wakeup.wait(self.tick)  # the next tick, or sooner when a link, webhook or sign-in queues work


def start_scheduler(c: Container, *, tick: float = TICK_SECONDS) -> Scheduler:
    """The process's one scheduler, started on first call (Streamlit reruns and sessions share it)."""
    global _instance  # noqa: PLW0603 - one scheduler per process is the point
    with _lock:
        if _instance is None:
            _instance = Scheduler(c, tick=tick)
        _instance.start()
        return _instance


def running_here() -> bool:
    """Whether this process's scheduler thread is alive (the admin page says so)."""
    with _lock:
        return _instance is not None and _instance.running


def stop_scheduler() -> None:
    """Stop the process's scheduler, if any (tests and shutdown)."""
    global _instance  # noqa: PLW0603
    with _lock:
        if _instance is not None:
            _instance.stop()
            _instance = None
