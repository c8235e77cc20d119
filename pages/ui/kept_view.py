"""The Accounts page's section for what was kept from removed banks: listed, and deleted on request."""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
import streamlit as st

from pages.ui.format import count, day, money
from pages.ui.reauth import proof_inputs
from pages.ui.session import client_ip
from pages.ui.state import flash
from pages.ui.text import md
from services import kept_history
from services.container import Container
from services.errors import FinsyncError


def kept_section(c: Container, uid: uuid.UUID, *, two_factor: bool) -> None:
    """Nothing when nothing was kept; else a table of the kept accounts and a way to delete the history of any of them."""
    kept = kept_history.kept_accounts(c, uid)
    if not kept:
        return
    st.subheader("Kept from removed banks")
    st.caption(
        "You removed these banks and kept their history: the transactions stay in Transactions, and the balance "
        "is the last one the bank gave. Link the same bank again and its history continues where it stopped."
    )
    rows = [
        {
            "Account": k.label,
            "Type": k.type,
            "Last balance": money(k.current_minor, k.currency),
            "Transactions": k.transactions,
            "Pending": k.pending,
            "Dates": f"{k.first.isoformat()} – {k.last.isoformat()}" if k.first and k.last else "",
        }
        for k in kept
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    # When each bank went, said once per bank under the table (a column of it would push the table past the page)
    removed: dict[str, datetime] = {}
    for k in kept:
        if k.removed_at is not None:
            removed[k.institution_name] = max(removed.get(k.institution_name, k.removed_at), k.removed_at)
    if removed:
        st.caption("; ".join(f"{md(bank)} removed on {day(at)}" for bank, at in removed.items()) + ".")
    if any(k.pending for k in kept):
        st.caption(
            "A transaction still pending when its bank was removed stays pending here: no bank is left to say it "
            "posted or was dropped. Linking the bank again settles it."
        )
    with (
        st.popover("Delete kept history", icon=":material/delete:", key="kept_delete_popover"),
        st.form("kept_delete_form", border=False),
    ):
        names = {str(k.id): k for k in kept}
        if len(kept) == 1:  # nothing to choose
            chosen = list(names)
            st.write(f"{md(kept[0].label)}: its transactions, with your notes and tags on them, are deleted for good.")
        else:
            chosen = st.multiselect(
                "Accounts", list(names), format_func=lambda key: names[key].label, key="kept_delete_accounts"
            )
            st.write("Their transactions, with your notes and tags on them, are deleted for good.")
        password, code = proof_inputs(two_factor, "kept_delete")
        if st.form_submit_button("Delete for good"):
            doomed = [names[key] for key in chosen if key in names]
            try:
                gone = kept_history.delete_kept(
                    c, uid, [k.id for k in doomed], password=password, code=code, ip=client_ip()
                )
            except FinsyncError as exc:
                st.error(str(exc))
            else:
                which = ", ".join(k.label for k in doomed)
                flash("success", f"Deleted the kept history of {which} ({count(gone, 'transaction')}).")
                st.rerun()
