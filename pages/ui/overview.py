"""The Home page's overview: what the person has linked, what it holds, and what needs them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

import streamlit as st

from pages.ui.format import bank_labels, count, money, when
from pages.ui.text import md, unbroken
from services import banking, sync
from services.banking import AccountView
from services.container import Container


def _totals(accounts: Iterable[AccountView]) -> str:
    """Current balances summed per currency (``$1.00 · €2.00``); a dash when there are none."""
    sums: dict[str, int] = defaultdict(int)
    for a in accounts:
        if a.current_minor is not None:
            sums[(a.currency or "USD").upper()] += a.current_minor
    return " · ".join(money(v, k) for k, v in sorted(sums.items())) or "—"


def overview(c: Container, uid: uuid.UUID, *, can_link: bool) -> None:
    """Balances by kind, the last sync, and every connection that needs the person's attention."""
    items = banking.list_items(c, uid)
    if not items and not can_link:
        return  # the page already asks them to verify their email first
    if not items:
        st.info("No bank linked yet: link one and finsync keeps its transactions in sync by itself.")
        st.page_link("accounts.py", label="Link a bank", icon=":material/add_link:")
        return
    statuses = sync.item_sync_status(c, uid)
    # an account the bank no longer shares has no current balance: it stays out of today's totals
    accounts = [a for item in items for a in item.accounts if a.unshared_since is None]
    cash, owed = st.columns(2)
    cash.metric("Cash (checking and savings)", _totals(a for a in accounts if a.type == "depository"))
    owed.metric("Owed on cards and loans", _totals(a for a in accounts if a.type in ("credit", "loan")))
    synced = [s.last_success_at for s in statuses if s.last_success_at is not None]
    banks = f"{count(len(items), 'bank')}, {count(len(accounts), 'account')}"
    labels = bank_labels(items)  # two logins at one bank, both preparing: each named with its accounts' digits
    preparing = [
        labels.get(s.item_id, s.institution_name)
        for s in statuses
        if s.state == "preparing" and s.last_success_at is None
    ]
    if preparing:  # linked and fine, but nothing came yet: "not synced yet" read as a fault
        fresh = f"{md(', '.join(preparing))} {'is' if len(preparing) == 1 else 'are'} still preparing your transactions"
    elif len(synced) < len(statuses):  # the newest sync would hide a bank that has none
        fresh = "a bank has not synced yet" if synced else "not synced yet"
    elif len(synced) > 1:  # nor may it hide a bank that has fallen behind: the oldest says how current all are
        fresh = f"every bank synced since {unbroken(when(min(synced)))}"
    else:
        fresh = f"last synced {unbroken(when(synced[0]))}"
    st.caption(f"{banks} · {fresh}")

    attention = [f"{md(i.institution_name)}: {md(i.status_message)}" for i in items if i.needs_attention]
    attention += [
        f"{md(s.institution_name)}: an account's balance no longer matches its transactions."
        for s in statuses
        if s.drift_flagged_accounts
    ]
    for line in attention:
        st.warning(line, icon=":material/link_off:")
    if attention:
        st.page_link("accounts.py", label="Open Accounts to fix it", icon=":material/account_balance:")
