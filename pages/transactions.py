"""Transactions: search the ledger, edit a transaction's category, note, tags or exclusion, see its history."""

import pandas as pd
import streamlit as st

from pages.ui.format import money
from pages.ui.session import require_user
from pages.ui.state import container
from pages.ui.text import md
from services import ledger, sync
from services.errors import FinsyncError

view = require_user()
c = container()
uid = view.user.id
st.title("Transactions")

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
            "Category": t.category or "",
            "Account": names.get(t.account_id, ""),
            "Pending": t.pending,
            "Excluded": t.excluded,
        }
        for t in rows
    ]
)
st.caption(f"{len(rows)} transaction(s), newest first. Select one to edit it.")
picked = st.dataframe(
    frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="tx_grid"
)
selected = picked.selection.rows if picked and picked.selection else []
if not selected:
    st.stop()

tx = rows[selected[0]]
st.subheader(md(tx.merchant_name or tx.name))
with st.form("tx_edit_form"):
    category = st.text_input("Category", value=tx.category or "", max_chars=64, key="tx_category")
    note = st.text_area("Note", value=tx.note or "", max_chars=500, key="tx_note")
    tags = st.text_input("Tags (comma-separated)", value=", ".join(tx.tags), max_chars=300, key="tx_tags")
    excluded = st.checkbox("Exclude from budgets and reports", value=tx.excluded, key="tx_excluded")
    saved = st.form_submit_button("Save")
if saved:
    try:
        sync.edit_transaction(
            c,
            uid,
            tx.transaction_id,
            category=category.strip() or "",
            note=note,
            tags=[t.strip() for t in tags.split(",") if t.strip()],
            excluded=excluded,
        )
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        st.success("Saved. Your edits stay when the bank updates or posts this transaction.")

history = sync.transaction_history(c, uid, tx.transaction_id)
with st.expander(f"What the bank changed ({len(history)})"):
    if history:
        st.dataframe(
            pd.DataFrame(
                [
                    {"When (UTC)": h.changed_at, "Field": h.field_name, "Before": h.old_value, "After": h.new_value}
                    for h in history
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No changes from the bank.")
