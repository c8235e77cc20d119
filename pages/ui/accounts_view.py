"""One card per linked bank on the Accounts page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pandas as pd
import streamlit as st

from pages.ui.format import masks, money, when
from pages.ui.remove_view import remove_form
from pages.ui.sync_view import preparing, sync_line, sync_now
from pages.ui.text import md, unbroken
from services import banking
from services.banking import AccountView, ItemView
from services.container import Container
from services.errors import FinsyncError
from services.ledger import account_label
from services.sync import ItemSyncStatus


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
