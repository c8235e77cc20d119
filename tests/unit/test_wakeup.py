"""The scheduler's nudge: work queued in this process wakes it at once, and a nudge is used up by one wait."""

from __future__ import annotations

import threading

from services import wakeup


def test_a_nudge_ends_a_wait_and_is_used_up_by_it() -> None:
    wakeup.wait(0)
    assert not wakeup.wait(0.01)  # nothing queued: the wait runs out
    wakeup.nudge()
    assert wakeup.wait(0)
    assert not wakeup.wait(0)  # one nudge, one wake-up


def test_a_nudge_from_another_thread_wakes_a_sleeper_long_before_its_timeout() -> None:
    wakeup.wait(0)
    woke: list[bool] = []
    sleeper = threading.Thread(target=lambda: woke.append(wakeup.wait(600)), daemon=True)
    sleeper.start()
    wakeup.nudge()
    sleeper.join(30)  # bounded: a missed nudge leaves the thread asleep and fails below, not hangs
    assert woke == [True]
