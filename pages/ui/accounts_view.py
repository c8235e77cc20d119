"""Pieces of the Accounts page: one card per linked bank, and what happens when Link finishes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from pages.ui.format import bank_labels, count, masks, money, when
from pages.ui.outage import database_outage_notice
from pages.ui.remove_view import remove_form
from pages.ui.session import client_ip, still_signed_in
from pages.ui.state import flash_again
from pages.ui.text import md, unbroken
from services import banking, sync
from services.banking import AccountView, ItemView
from services.container import Container
from services.errors import DuplicateConnection, FinsyncError
from services.ledger import account_label
from services.sync import ItemSyncStatus, SyncProgress


def finish_link(
    c: Container, uid: uuid.UUID, outcome: dict[str, Any], link_session_id: str, repair: str | None
) -> None:
    """Exchange the public token (or record the exit), then rerun with the outcome in plain words."""
    st.session_state.pop("link_start", None)
    try:
        if outcome.get("kind") != "success":
            message = banking.link_exit(
                c, uid, link_session_id=uuid.UUID(link_session_id), error=outcome.get("error"), ip=client_ip()
            )
            st.session_state["flash"] = [("warning", message)]
        elif repair:
            before = _last_attempt(c, uid, uuid.UUID(repair))
            was = next((i.status for i in banking.list_items(c, uid) if str(i.id) == repair), None)
            item = banking.complete_repair(c, uid, uuid.UUID(repair), ip=client_ip())
            name = bank_labels(banking.list_items(c, uid)).get(item.id, item.institution_name)  # which of two
            if item.needs_attention:  # Plaid still says no (a login, or an error): no sync is coming to follow
                st.session_state["flash"] = [("warning", f"{name}: {item.status_message}")]
            else:
                # it was never cut off when all it asked was which new accounts to share
                done = "now shares the accounts you chose" if was == "new_accounts_available" else "is connected again"
                st.session_state["flash"] = [("success", f"{name} {done}.")]
                _watch(item.id, before)
        else:
            item = banking.complete_link(
                c,
                uid,
                public_token=str(outcome.get("public_token", "")),
                metadata=dict(outcome.get("metadata") or {}),
                link_session_id=uuid.UUID(link_session_id),
                ip=client_ip(),
            )
            linked = f"Linked {item.institution_name} with {count(len(item.accounts), 'account')}."
            st.session_state["flash"] = [("success", linked)]
            _watch(item.id, None)
    except DuplicateConnection as exc:
        st.session_state["flash"] = [("error", str(exc) + _which(c, uid, exc.item_id))]
        if exc.repairable:  # its card shows "Repair connection" though healthy, and comes first
            st.session_state["offer_repair"] = str(exc.item_id)
    except FinsyncError as exc:
        st.session_state["flash"] = [("error", str(exc))]
    st.rerun()


def _which(c: Container, uid: uuid.UUID, item_id: object) -> str:
    """With two connections to the bank a refusal names, which one it means: its card's accounts."""
    items = banking.list_items(c, uid)
    meant = next((i for i in items if i.id == item_id), None)
    if meant is None or sum(i.institution_name == meant.institution_name for i in items) < 2 or not masks(meant):
        return ""
    return f" It is the card of {meant.institution_name} with the accounts {masks(meant)}."


WATCH_SECONDS = 300  # a first sync takes seconds in demo mode; Plaid may need minutes. Past that, a reload shows it.
BUSY = ("new", "syncing")


def _last_attempt(c: Container, uid: uuid.UUID, item_id: uuid.UUID) -> str | None:
    """When the bank's last sync attempt ended, as a marker (None: never): a later attempt changes it."""
    status = next((s for s in sync.item_sync_status(c, uid) if s.item_id == item_id), None)
    return status.last_attempt_at.isoformat() if status is not None and status.last_attempt_at else None


def _watch(item_id: uuid.UUID, last_attempt: str | None) -> None:
    """Follow a bank just linked or repaired until a sync attempt after ``last_attempt`` has ended, however fast
    (no clock is compared: a worker on another machine stamps the attempt with its own)."""
    st.session_state.setdefault("watch_items", {})[str(item_id)] = last_attempt
    st.session_state.pop("watch_until", None)  # and for a while from now, whatever an earlier watch used up


def _unwatch(item_id: uuid.UUID) -> None:
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

        _unwatch(item.id)  # this sync tells its own outcome
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


def _note(a: AccountView, flagged: tuple[uuid.UUID, ...]) -> str:
    if a.unshared_since is not None:  # its balance stopped with it: say so rather than show it as today's
        return f" · not shared any more, balance of {when(a.balance_updated_at)}"
    return " ⚠ balance drift" if a.id in flagged else ""


def _accounts_table(item: ItemView, flagged: tuple[uuid.UUID, ...] = ()) -> None:
    rows = [
        {
            "Account": account_label(a.name, a.mask) + _note(a, flagged),
            "Type": a.subtype or a.type,
            "Current": money(a.current_minor, a.currency),
            "Available": money(a.available_minor, a.currency),
            "Limit": money(a.limit_minor, a.currency) if a.limit_minor is not None else "",
        }
        for a in item.accounts
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def needs_attention(item: ItemView, status: ItemSyncStatus | None) -> bool:
    """A connection to repair (or remove and link again), or an account whose balance no longer matches its transactions."""
    return item.needs_attention or bool(status and status.drift_flagged_accounts)


def preparing(status: ItemSyncStatus | None) -> bool:
    """The bank is still gathering the connection's transactions (Plaid's NOT_READY): nothing is wrong, none are here."""
    return status is not None and status.state == "preparing"


PREPARING = "Your bank is still preparing your transactions. Nothing to do: they appear here once it is ready."


def twin_line(item: ItemView) -> str:
    """What tells one of several connections to the same bank from the others: when it was linked, its accounts."""
    digits = masks(item)
    return f"Linked {unbroken(when(item.created_at))}" + (f" · accounts {md(digits)}" if digits else "")


def item_card(
    c: Container,
    uid: uuid.UUID,
    item: ItemView,
    status: ItemSyncStatus | None,
    *,
    two_factor: bool,
    twin: bool = False,
    name: str | None = None,
) -> None:
    """One linked bank; ``twin``: another connection has the same bank's name, so the card says which one it is;
    ``name``: what news about it calls it (``bank_labels``: the name, with the accounts' digits for a twin)."""
    name = name or item.institution_name
    with st.container(border=True, key=f"bank_card_{item.id}"):
        head, badge = st.columns([3, 2])
        head.subheader(md(item.institution_name))
        if twin:
            head.caption(twin_line(item))
        if item.needs_attention:
            badge.error(md(item.status_message), icon=":material/link_off:")
        elif preparing(status):  # linked and working, but "Connected." hid that nothing has come yet
            badge.info(PREPARING, icon=":material/hourglass_top:")
        else:
            badge.success(md(item.status_message), icon=":material/check_circle:")
        sync_line(status, c.clock(), needs_repair=item.needs_repair)
        flagged = status.drift_flagged_accounts if status else ()
        _accounts_table(item, flagged)
        gone = [a.unshared_since for a in item.accounts if a.unshared_since is not None]
        if gone:  # news for a month; after that (a closed account, say) a quiet line
            say = st.info if c.clock() - max(gone) < timedelta(days=30) else st.caption
            say(
                "Your bank no longer shares an account of this login with finsync (it was unticked in your bank's "
                "sign-in, or closed). Its transactions so far stay in your ledger; if it was unticked, Repair "
                "connection shares it again."
            )
        if flagged:
            st.warning(
                "The balance of a flagged account no longer matches its transactions as it did before the last "
                "sync: a transaction may be missing. Sync again; if it stays, check the account at your bank."
            )
        # side by side, each as wide as its words, wrapping on a phone: three columns left a blank slot where no
        # Repair button was (on a phone, a gap between "Sync now" and "Remove")
        actions = st.container(horizontal=True, key=f"bank_actions_{item.id}")
        if actions.button("Sync now", key=f"sync_{item.id}", icon=":material/sync:"):
            sync_now(c, uid, item, name=name)
        duplicate = st.session_state.get("offer_repair") == str(item.id)  # linked again to share more accounts
        # more accounts to share, unless the connection is one no repair can fix (access withdrawn, or in error)
        offered = (duplicate or any(a.unshared_since for a in item.accounts)) and not item.needs_attention
        if (item.needs_repair or offered) and actions.button(  # urgent-looking only when the bank needs it
            "Repair connection", key=f"repair_{item.id}", type="primary" if item.needs_repair else "secondary"
        ):
            st.session_state.pop("offer_repair", None)
            try:
                start = banking.start_link(c, uid, item_id=item.id, add_accounts=duplicate)
            except FinsyncError as exc:
                st.error(str(exc))
            else:
                st.session_state["link_start"] = (
                    start.link_token,
                    str(start.link_session_id),
                    start.script_url,
                    str(item.id),
                )
                st.rerun()
        remove_form(c, uid, item, actions, two_factor=two_factor, label=name)  # which one went, for a twin
