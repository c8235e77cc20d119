"""Transactions: search the ledger a page at a time, edit a transaction's category, note, tags or exclusion, see its
history."""

import streamlit as st

from pages.ui import transactions_view as tv
from pages.ui.export_view import export_section
from pages.ui.session import require_user
from pages.ui.state import container
from pages.ui.text import md
from services import ledger, ledger_listing, sync

view = require_user()
c = container()
uid = view.user.id
st.title("Transactions")
saving = bool(st.session_state.get("tx_save"))  # Save was pressed on the form the last run drew

tv.news(c, uid, sync.last_change(c, uid))
export_section(c, uid, two_factor=view.user.totp_enabled)
search = st.text_input("Search name, merchant, category, account, note or tags", max_chars=100, key="tx_search")
needle = search.strip()
moved = st.session_state.get("tx_page")  # (search, the row it follows) of the page Older / Newer went to
if moved and moved[0] != needle:  # another search starts at the newest
    st.session_state.pop("tx_page")
    moved = None
page = ledger_listing.list_transactions(c, uid, search=needle, start=moved[1] if moved else None)
names = ledger.account_names(c, uid)
ids = [t.transaction_id for t in page]
grid = tv.grid_key(ids)
# "Saved" is said beside the form; here when the edit took its row off the list. Dropped once said: a run that
# reruns before reaching the form keeps it for the next.
said = st.session_state.get("tx_flash")
if said and st.session_state.get("tx_selected") not in ids:
    gone = "It no longer matches your search" if needle else "It is no longer on this page"
    st.success(f"{said} {gone}, so it left this list.")
    st.session_state.pop("tx_flash", None)
if not page:
    st.session_state.pop("tx_selected", None)
    if saving:
        st.warning(tv.NOT_SAVED)
    if needle:
        st.info(
            f"No transactions match “{md(needle)}”. The search looks at name, merchant, category, "
            "account, note and tags."
        )
    else:
        st.info(tv.nothing_yet(c, uid))
    st.stop()

frame = tv.transactions_frame(page, names)
st.caption(tv.list_caption(page, needle))

chosen = tv.same_or_posted(c, uid, st.session_state.get("tx_selected"), ids)
default = {"selection": {"rows": [ids.index(chosen)]}} if chosen in ids else None
selected = tv.transactions_grid(page, frame, default, grid)
if len(page) < page.total:
    tv.pager(page, needle)
if not selected:
    st.session_state.pop("tx_selected", None)
    if saving:
        st.warning(tv.NOT_SAVED)
    st.stop()
tx = page[selected[0]]  # as this run just read it
st.session_state["tx_selected"] = tx.transaction_id
tv.edit_form(c, uid, tx)
tv.change_history(c, uid, tx)
