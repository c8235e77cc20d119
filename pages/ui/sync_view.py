"""A bank's sync on its card: the sync line, and Sync now with its progress and outcome."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from pages.ui.format import count, when
from pages.ui.sync_watch import unwatch
from pages.ui.text import md, unbroken
from services import sync
from services.banking import ItemView
from services.container import Container
from services.errors import FinsyncError
from services.sync import ItemSyncStatus, SyncProgress


def preparing(status: ItemSyncStatus | None) -> bool:
    """The bank is still gathering the connection's transactions (Plaid's NOT_READY): nothing is wrong, none are here."""
    return status is not None and status.state == "preparing"


def sync_line(status: ItemSyncStatus | None, now: datetime, *, needs_repair: bool = False) -> None:
    """Last successful sync, next scheduled one, and the state in words."""
    if status is None or (status.last_success_at is None and status.last_attempt_at is None):
        if needs_repair:  # the bank asked for a sign-in before the first sync: that sync cannot bring anything
            st.caption("Not synced yet: syncing waits until you repair the connection.")
        else:
            st.caption("Waiting for its first sync: it starts within a minute.")
        return
    due = status.next_due_at
    coming = "within a minute" if due is None or due <= now else unbroken(when(due))  # due: the next tick takes it
    if preparing(status) and status.last_success_at is None:  # the badge says why; "Last synced never" said nothing
        st.caption(f"No transactions yet · finsync asks your bank again {'at ' if due and due > now else ''}{coming}")
        return
    # each time whole: on a phone the line broke inside one ("next 2026-12-07" / "18:46 UTC")
    last = unbroken(when(status.last_success_at))
    st.caption(f"Last synced {last} · next {coming} · {md(status.message or status.state)}")


def _resume(held: list[RerunException | StopException]) -> None:
    """Let through the rerun or stop that Streamlit asked for while the sync was running."""
    if held:
        raise held[0]


AGAIN_AFTER = timedelta(seconds=10)  # a second press sooner than this after a good sync is the same wish
STILL_SYNCING = timedelta(seconds=120)  # a sync this page started is waited for this long at most


@dataclass
class _OwnSync:
    """This page's sync of one bank, kept in the session. A plain object: the run that syncs can still write to it
    once Streamlit has stopped that run, when every ``st.session_state`` access raises."""

    started: datetime
    finished: datetime | None = None  # a good sync's end: presses soon after are the same wish
    said: tuple[str, str] | None = None  # its outcome, for the page to show
    done: bool = False


def _await_own_sync(own: _OwnSync, name: str) -> None:
    """Wait for this page's sync of the bank, running on in a run Streamlit stopped, then show its outcome."""
    with st.status(f"Syncing {md(name)}…"):
        deadline = time.monotonic() + STILL_SYNCING.total_seconds()
        while not own.done and time.monotonic() < deadline:
            time.sleep(0.1)
    if own.said is not None:
        st.session_state["flash"] = [own.said]
    st.rerun()


def sync_now(c: Container, uid: uuid.UUID, item: ItemView, *, name: str | None = None) -> None:
    """Sync one bank now, showing pages fetched and transactions applied as they happen; ``name``: what the news
    calls the bank (with its accounts' last digits when another connection shares its name).

    A press made while the sync runs must not sync the bank again. Streamlit either holds it until the sync is
    done, or stops the run (which syncs on to the end) and starts the next one at once. So the page keeps its
    sync in the session: a press while it runs waits for it and shows its outcome; within ``AGAIN_AFTER`` of a
    good one, a press does nothing more, as the page above already shows that outcome ("… is up to date: 3 new,
    …"), just now or, within ``show_flash``'s grace, once more. After a failure a press tries again."""
    key = str(item.id)
    mine: dict[str, _OwnSync] = st.session_state.setdefault("own_syncs", {})
    own = mine.get(key)
    if own is not None and not own.done and c.clock() - own.started < STILL_SYNCING:
        _await_own_sync(own, name or item.institution_name)
    if own is not None and own.finished is not None and c.clock() - own.finished < AGAIN_AFTER:
        return
    mine[key] = own = _OwnSync(c.clock())
    try:
        _sync_and_tell(c, uid, item, own, name or item.institution_name)
    finally:
        own.done = True
        if own.finished is None and mine.get(key) is own:  # failed, or cut short: the next press tries again
            mine.pop(key, None)
    st.rerun()  # the card's status, last sync and balances show what the sync changed


def _sync_and_tell(c: Container, uid: uuid.UUID, item: ItemView, own: _OwnSync, name: str) -> None:
    with st.status(f"Syncing {md(name)}…", expanded=True) as box:
        line = st.empty()
        held: list[RerunException | StopException] = []

        def progress(p: SyncProgress) -> None:
            if held:
                return
            try:
                line.write(
                    f"{p.stage}: {count(p.pages, 'page')} fetched, {count(p.fetched, 'change')}, {p.applied} applied"
                )
            except (RerunException, StopException) as exc:
                # A click (or a closed tab) meanwhile makes Streamlit raise here; letting it through would
                # abort the sync halfway, so hold it and honour it once the sync has finished.
                held.append(exc)

        unwatch(item.id)  # this sync tells its own outcome
        label: str
        state: Literal["complete", "error"]
        try:
            result = sync.sync_item(c, uid, item.id, explicit=True, progress=progress)
        except FinsyncError as exc:
            label, state, said = md(str(exc)), "error", ("error", str(exc))
        else:
            done = f"{result.added} new, {result.modified} updated, {result.removed} removed"
            if result.status == "ok":
                label, state = f"{md(name)} is up to date: {done}.", "complete"
                said = ("success", f"{name} is up to date: {done}.")
                own.finished = c.clock()
            elif result.status == "already_syncing":  # the bot got there first: not a failure, and the page follows it
                label, state, said = md(result.message), "complete", ("info", result.message)
            else:  # said at the top of the page, above every card: which bank it is about
                message = f"{name}: {result.message or result.status}"
                if result.ok:  # "preparing": the bank is still gathering its history, nothing went wrong
                    label, state, said = md(message), "complete", ("info", message)
                else:
                    label, state, said = md(message), "error", ("error", message)
        own.said = said
        for _ in range(2):  # a rerun asked for meanwhile raises once; a stop, every time (the waiting run tells it)
            try:
                st.session_state["flash"] = [said]
                break
            except (RerunException, StopException) as exc:
                held.append(exc)
        _resume(held)
        box.update(label=label, state=state)
