"""Transactions: search the ledger, edit a transaction's category, note, tags or exclusion, see its history."""

import hashlib

import pandas as pd
import streamlit as st

from pages.ui.export_view import export_section
from pages.ui.format import category, count, money, when
from pages.ui.session import require_user
from pages.ui.state import container
from pages.ui.text import md
from services import ledger, sync
from services.errors import FinsyncError

view = require_user()
c = container()
uid = view.user.id
st.title("Transactions")

export_section(c, uid, two_factor=view.user.totp_enabled)
search = st.text_input("Search by name or merchant", max_chars=100, key="tx_search")
rows = ledger.list_transactions(c, uid, search=search)
names = ledger.account_names(c, uid)
if not rows:
    st.info("No transactions yet. Link a bank on the Accounts page; finsync syncs it by itself.")
    st.stop()

frame = pd.DataFrame(
    [
        {
            "Date": t.date,
            "Name": t.name,
            "Merchant": t.merchant_name or "",
            "Amount": money(t.amount_minor, t.iso_currency_code),
            "Category": category(t.category),
            "Account": names.get(t.account_id, ""),
            "Pending": t.pending,
            "Excluded": t.excluded,
        }
        for t in rows
    ]
)
st.caption(f"{count(len(rows), 'transaction')}, newest first. Select one to edit it.")
ids = [t.transaction_id for t in rows]
# The grid's selection is a row position. Its key follows the rows shown, so a position always refers to
# the list the user clicked in; when a sync changes the list, the old selection is dropped, not re-pointed.
grid = "tx_grid_" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
picked = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key=grid)
selected = picked.selection.rows if picked and picked.selection else []
if selected:
    st.session_state["tx_selected"] = ids[selected[0]]
elif st.session_state.get("tx_grid") == (grid, True):  # a selection in this same list is gone: cleared
    st.session_state.pop("tx_selected", None)
st.session_state["tx_grid"] = (grid, bool(selected))
tx_id = st.session_state.get("tx_selected")
if not tx_id:
    st.stop()
try:
    tx = sync.get_transaction(c, uid, tx_id)
except FinsyncError as exc:
    st.session_state.pop("tx_selected", None)
    st.warning(str(exc))
    st.stop()

drawn = st.session_state.get("tx_opened")  # (id, version) of the form the user saw when they pressed Save
st.subheader(md(f"{tx.merchant_name or tx.name} · {tx.date:%d %b %Y} · {money(tx.amount_minor, tx.iso_currency_code)}"))
shown = f"{tx.transaction_id}_{tx.version}"  # a saved edit elsewhere redraws the fields with what is stored now
with st.form("tx_edit_form"):
    category = st.text_input(
        "Category",
        value=tx.category_override or "",
        max_chars=64,
        placeholder=category(tx.plaid_category),
        help="Leave empty to use your bank's category"
        + (f" ({category(tx.plaid_category)})." if tx.plaid_category else "."),
        key=f"tx_category_{shown}",
    )
    note = st.text_area("Note", value=tx.note or "", max_chars=500, key=f"tx_note_{shown}")
    tags = st.text_input("Tags (comma-separated)", value=", ".join(tx.tags), max_chars=300, key=f"tx_tags_{shown}")
    excluded = st.checkbox("Exclude from budgets and reports", value=tx.excluded, key=f"tx_excluded_{shown}")
    saved = st.form_submit_button("Save")
if saved and drawn != (tx_id, tx.version):
    st.error(ledger.STALE_EDIT)
elif saved:
    new_tags = [t.strip() for t in tags.split(",") if t.strip()]
    try:  # only what the user changed, checked against the version the form was drawn from
        tx = sync.edit_transaction(
            c,
            uid,
            tx.transaction_id,
            category=None if category.strip() == (tx.category_override or "") else category.strip(),
            note=None if note.strip() == (tx.note or "") else note,
            tags=None if tuple(new_tags) == tx.tags else new_tags,
            excluded=None if excluded == tx.excluded else excluded,
            opened=tx,
        )
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        st.session_state["tx_selected"] = tx.transaction_id
        st.session_state["tx_opened"] = (tx.transaction_id, tx.version)
        st.session_state["tx_flash"] = "Saved. Your edits stay when the bank updates or posts this transaction."
        st.rerun()  # the list above shows the new category and exclusion at once
st.session_state["tx_opened"] = (tx_id, tx.version)
if flash := st.session_state.pop("tx_flash", None):
    st.success(flash)

history = sync.transaction_history(c, uid, tx.transaction_id)
with st.expander(f"What the bank changed ({len(history)})"):
    if history:
        st.dataframe(
            pd.DataFrame(
                [
                    {"When": when(h.changed_at), "Field": h.field_name, "Before": h.old_value, "After": h.new_value}
                    for h in history
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No changes from the bank.")
