"""Following a bank's sync from the Accounts page: the watch after Link, the poll, and the quiet look."""

from __future__ import annotations

import time
import uuid

import streamlit as st

from pages.ui.format import bank_labels
from pages.ui.outage import database_outage_notice
from pages.ui.session import still_signed_in
from pages.ui.state import flash_again
from services import banking, sync
from services.banking import ItemView
from services.container import Container
from services.sync import ItemSyncStatus

WATCH_SECONDS = 300  # a first sync takes seconds in demo mode; Plaid may need minutes. Past that, a reload shows it.
BUSY = ("new", "syncing")


def last_attempt(c: Container, uid: uuid.UUID, item_id: uuid.UUID) -> str | None:
    """When the bank's last sync attempt ended, as a marker (None: never): a later attempt changes it."""
    status = next((s for s in sync.item_sync_status(c, uid) if s.item_id == item_id), None)
    return status.last_attempt_at.isoformat() if status is not None and status.last_attempt_at else None


def watch(item_id: uuid.UUID, last_attempt: str | None) -> None:
    """Follow a bank just linked or repaired until a sync attempt after ``last_attempt`` has ended, however fast
    (no clock is compared: a worker on another machine stamps the attempt with its own)."""
    st.session_state.setdefault("watch_items", {})[str(item_id)] = last_attempt
    st.session_state.pop("watch_until", None)  # and for a while from now, whatever an earlier watch used up


def unwatch(item_id: uuid.UUID) -> None:
    st.session_state.get("watch_items", {}).pop(str(item_id), None)


def _settled(status: ItemSyncStatus, watched: dict[str, str | None]) -> bool:
    """No sync running or waiting for it; for a watched bank, one has also ended since it was linked or repaired."""
    if status.state in BUSY:
        return False
    if str(status.item_id) not in watched:
        return True
    now = status.last_attempt_at.isoformat() if status.last_attempt_at else None
    return now is not None and now != watched[str(status.item_id)]


QUIET_POLL_SECONDS = 20  # nothing syncing: look this often whether the bot (or a webhook) changed anything


def _follow_quietly(c: Container, uid: uuid.UUID, items: list[ItemView], statuses: list[ItemSyncStatus]) -> None:
    """Nothing syncing: a page left open still shows what the bot does meanwhile (a scheduled or webhook sync, a
    bank that now needs its owner, a bank linked or removed in another tab), and stops when its session ends."""

    def seen(items: list[ItemView], statuses: list[ItemSyncStatus]) -> tuple[object, ...]:
        return tuple(sorted(items, key=lambda i: str(i.id))), tuple(sorted(statuses, key=lambda s: str(s.item_id)))

    shown = seen(items, statuses)

    @st.fragment(run_every=QUIET_POLL_SECONDS)
    def follow() -> None:
        with database_outage_notice(retry=False):  # the database gone: said here; the next poll tries again
            still_signed_in(uid)
            if seen(banking.list_items(c, uid), sync.item_sync_status(c, uid)) != shown:
                flash_again()  # a rerun of its own: what the page said stays
                st.rerun(scope="app")

    follow()


def watch_syncing(c: Container, uid: uuid.UUID, items: list[ItemView], statuses: list[ItemSyncStatus]) -> None:
    """While the bot syncs a bank (a new one's first sync above all), reload the page by itself once it is done;
    with nothing syncing, look now and then whether anything changed (see ``_follow_quietly``).

    A bank just linked or repaired is followed until its sync has been told, even one that ended before this run
    looked: the follow-up poll then tells it at once."""
    listed = {str(s.item_id) for s in statuses}  # a bank removed meanwhile is not followed
    watched = {k: v for k, v in st.session_state.get("watch_items", {}).items() if k in listed}
    until = st.session_state.get("watch_until")
    if until is not None and time.monotonic() > until:  # followed long enough: a reload shows the rest
        watched = {}
    st.session_state["watch_items"] = watched
    busy = {s.item_id for s in statuses if not _settled(s, watched) or str(s.item_id) in watched}
    labels = bank_labels(items)  # two connections to one bank: the news says which one synced
    if not busy:
        st.session_state.pop("watch_until", None)
        if "link_start" not in st.session_state:  # never rerun under an open Link
            _follow_quietly(c, uid, items, statuses)
        return
    until = st.session_state.setdefault("watch_until", time.monotonic() + WATCH_SECONDS)
    if time.monotonic() > until or "link_start" in st.session_state:  # never rerun under an open Link
        return

    @st.fragment(run_every=2)
    def poll() -> None:
        with database_outage_notice(retry=False):  # the database gone: said here; the next poll tries again
            still_signed_in(uid)
            now = {s.item_id: s for s in sync.item_sync_status(c, uid)}
            done = [now[i] for i in busy if i in now and _settled(now[i], watched)]
            if done:  # its card, balances and last sync change: show them, and say so
                for s in done:
                    watched.pop(str(s.item_id), None)
                ok = [labels.get(s.item_id, s.institution_name) for s in done if s.state == "ok"]
                said = f"{', '.join(ok)} {'is' if len(ok) == 1 else 'are'} synced: see Transactions."
                flash_again(*([("success", said)] if ok else []))  # "Linked …" or "… connected again" stays
                st.rerun(scope="app")
            st.caption(":material/sync: Syncing in the background; this page updates by itself when it is done.")

    poll()
