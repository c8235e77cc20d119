"""The Accounts page's section for what was kept from removed banks: listed, and deleted on request."""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
import streamlit as st

from pages.ui.format import count, day, money
from pages.ui.outage import survives_outage
from pages.ui.reauth import proof_inputs, take_proof
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
        proof_inputs(two_factor, "kept_delete")
        labels = {key: k.label for key, k in names.items()}
        st.form_submit_button(
            "Delete for good", on_click=_delete, args=(c, uid, labels, chosen if len(kept) == 1 else None)
        )
        refused = st.session_state.pop("kept_delete_error", None)
        if refused:
            st.error(refused)


@survives_outage
def _delete(c: Container, uid: uuid.UUID, labels: dict[str, str], only: list[str] | None) -> None:
    """The form's submit, before the page: the password (and code) go from the screen, refused or used; the accounts
    chosen stay chosen after a refusal. ``only``: the one account the form named (nothing to choose); ``labels``: the
    accounts the form offered, by id."""
    proof = take_proof("kept_delete", uid)
    if proof is None:
        return
    _, password, code = proof
    chosen = only if only is not None else list(st.session_state.get("kept_delete_accounts") or [])
    doomed = [key for key in chosen if key in labels]
    try:
        gone = kept_history.delete_kept(
            c, uid, [uuid.UUID(key) for key in doomed], password=password, code=code, ip=client_ip()
        )
    except FinsyncError as exc:
        st.session_state["kept_delete_error"] = str(exc)
    else:
        st.session_state.pop("kept_delete_accounts", None)  # they are gone: the next choice starts empty
        which = ", ".join(labels[key] for key in doomed)
        flash("success", f"Deleted the kept history of {which} ({count(gone, 'transaction')}).")
