"""A nudge for this process's scheduler: sync work was just queued, so run it now rather than at the next tick.

A bank just linked or repaired, a verified webhook asking for a sync, a sign-in that queued stale banks: each
calls ``nudge()`` after its transaction committed, and the scheduler thread, waiting in ``wait()``, wakes up.
Worker processes are not nudged; they find the same rows at their next poll.
"""

from __future__ import annotations

import threading

_work = threading.Event()


def nudge() -> None:
    """Tell this process's scheduler that there is work (call after the work's rows are committed)."""
    _work.set()


def wait(timeout: float) -> bool:
    """Sleep until nudged or ``timeout`` seconds pass; True if nudged. Clears the nudge before returning.

    Work committed before a nudge is visible to the pass that follows this call, so clearing loses nothing.
    """
    nudged = _work.wait(timeout)
    _work.clear()
    return nudged
