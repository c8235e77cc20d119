"""Pieces of the Transactions page: the grid of one page of the ledger, its news, pager, edit form and history."""

import hashlib
import uuid

import pandas as pd
import streamlit as st

from pages.ui.format import bank_labels, category, count, money, sortable_money, when
from pages.ui.outage import database_outage_notice
from pages.ui.session import still_signed_in
from pages.ui.text import md
from services import banking, ledger, ledger_listing, sync
from services.container import Container
from services.errors import FinsyncError
from services.money import in_units

NOT_SAVED = (
    "Nothing was saved: the transaction you were editing is no longer selected in this list (the search, the page "
    "or a sync changed it). Select it again to edit it."
)


def move(search: str, start: ledger_listing.Cursor | None) -> None:
    """Older / Newer / Newest: the page right after the row ``start`` names (None: the newest) of this search's list."""
    st.session_state["tx_page"] = (search, start)


def same_or_posted(c: Container, uid: uuid.UUID, tx_id: str | None, ids: list[str]) -> str | None:
    """The selected transaction as it is listed now: itself, or the posted charge that replaced that pending one."""
    if not tx_id or tx_id in ids:
        return tx_id
    try:
        return sync.get_transaction(c, uid, tx_id).transaction_id
    except FinsyncError:
        return None


def nothing_yet(c: Container, uid: uuid.UUID) -> str:
    """An empty ledger in words: a bank to link, a bank still preparing its data, or a first sync to wait for."""
    statuses = sync.item_sync_status(c, uid)
    if not statuses:
        return "No transactions yet. Link a bank on the Accounts page; finsync syncs it by itself."
    labels = bank_labels(banking.list_items(c, uid))  # two logins at one bank: each with its accounts' digits
    preparing = [labels.get(s.item_id, s.institution_name) for s in statuses if s.state == "preparing"]
    if preparing:
        verb = "is" if len(preparing) == 1 else "are"
        return f"No transactions yet: {md(', '.join(preparing))} {verb} still preparing them. Nothing to do: they appear here once ready."
    if any(s.last_success_at for s in statuses):
        return "No transactions yet: your linked banks have sent none so far."
    return "No transactions yet: they appear here after your bank's first sync (Accounts shows how it is going)."


NEWS_POLL_SECONDS = 20  # how often an open list looks whether a sync has changed the ledger under it


@st.fragment(run_every=NEWS_POLL_SECONDS)
def news(c: Container, uid: uuid.UUID, listed: object) -> None:
    """A list left open says when a sync (the bot, a webhook, another tab) has brought changes, and shows them on
    request: reloading by itself could take a half-typed note or search away. ``listed``: the ledger's last change
    when the list was drawn, an argument (a fragment's rerun gets the one its page run gave it), not a global that
    the rest of the page could reuse (a name reused further down made every poll see news, for ever)."""
    with database_outage_notice(retry=False):  # the database gone: said here; the next poll tries again
        still_signed_in(uid)
        if sync.last_change(c, uid) != listed:
            st.info("Your banks sent new or changed transactions since this list was shown.", icon=":material/sync:")
            if st.button("Show them", key="tx_news"):
                st.rerun(scope="app")


def grid_key(ids: list[str]) -> str:
    # The grid's selection is a row position. Its key changes whenever the rows shown change, so a position always
    # refers to the list the user clicked in, and a list shown again (a search cleared) starts afresh rather than with
    # a selection the browser kept from before but does not show. The form is for the row the grid shows selected and
    # no other: when the list changes (a search, another page, a sync), the selected transaction stays selected where
    # it is still listed, else the form goes.
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    before = st.session_state.get("tx_grid")  # (digest, generation) of the list drawn last run
    generation = before[1] + (before[0] != digest) if before else 0
    st.session_state["tx_grid"] = (digest, generation)
    return f"tx_grid_{digest}_{generation}"


def transactions_frame(page: ledger_listing.TransactionPage, names: dict[uuid.UUID, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Date": t.date,
                "Amount": float(in_units(t.amount_minor, t.iso_currency_code)),  # second: on a phone it is on screen
                "Name": t.name,
                "Merchant": t.merchant_name or "",
                "Category": t.category_override or category(t.plaid_category),  # the user's own words as typed
                "Account": names.get(t.account_id, ""),
                "Pending": t.pending,
                "Excluded": t.excluded,
                "Tags": ", ".join(t.tags),  # what a search may have found it by
                "Note": (t.note or "").split("\n", 1)[0][:80],
            }
            for t in page
        ]
    )


def list_caption(page: ledger_listing.TransactionPage, needle: str) -> str:
    found = count(page.total, "transaction") + (
        (" matches" if page.total == 1 else " match") + " your search" if needle else ""
    )
    last = page.position + len(page) - 1
    showing = f"; showing {page.position:,}–{last:,}" if len(page) < page.total else ""
    return f"{found}, newest first{showing}. Select one to edit it."


def amount_width(rows: list[ledger.TransactionView]) -> int:
    """Pixels for the Amount column: room for its longest amount as shown, sign included."""
    return 24 + 8 * max(len(money(t.amount_minor, t.iso_currency_code)) for t in rows)


def transactions_grid(
    page: ledger_listing.TransactionPage, frame: pd.DataFrame, default: object, grid: str
) -> list[int]:
    """The page's rows in a grid; the positions of the row selected in it (none, or one)."""
    picked = st.dataframe(
        sortable_money(frame, "Amount", [(t.amount_minor, t.iso_currency_code) for t in page]),
        hide_index=True,
        width="stretch",
        # Date and Amount stay in view while the other columns scroll sideways (on a phone, most of them do)
        # the amounts' width from the longest one: numbers align right, and a column sized by Streamlit cut the minus off
        column_config={
            "Date": st.column_config.Column(pinned=True),
            "Amount": st.column_config.Column(pinned=True, width=amount_width(page)),
        },
        on_select="rerun",
        selection_mode="single-row",
        selection_default=default,
        key=grid,
    )
    return [r for r in (picked.selection.rows if picked and picked.selection else []) if 0 <= r < len(page)]


def pager(page: ledger_listing.TransactionPage, needle: str) -> None:
    with st.container(horizontal=True):
        newest = page.position <= 1
        st.button("Newest", key="tx_newest", disabled=newest, on_click=move, args=(needle, None))
        st.button("Newer", key="tx_newer", disabled=newest, on_click=move, args=(needle, page.newer))
        st.button("Older", key="tx_older", disabled=page.older is None, on_click=move, args=(needle, page.older))


def edit_form(c: Container, uid: uuid.UUID, tx: ledger.TransactionView) -> None:
    """The selected transaction's category, note, tags and exclusion, saved against the version the form showed."""
    drawn = st.session_state.get("tx_opened")  # (id, version) of the form the user saw when they pressed Save
    # A hold the bot posted while its form was open is the same charge to the user: the form (and what was typed in
    # it) stays, and Save lands on the posted one, which carries the hold's edits and so the same version.
    opened = drawn[0] if drawn and drawn[0] == tx.pending_transaction_id else tx.transaction_id
    st.subheader(
        md(f"{tx.merchant_name or tx.name} · {tx.date:%d %b %Y} · {money(tx.amount_minor, tx.iso_currency_code)}")
    )
    shown = f"{opened}_{tx.version}"  # a saved edit elsewhere redraws the fields with what is stored now
    with st.form("tx_edit_form"):
        new_category = st.text_input(
            "Category",
            value=tx.category_override or "",
            max_chars=ledger.MAX_CATEGORY,
            placeholder=category(tx.plaid_category),
            help="Leave empty to use your bank's category"
            + (f" ({category(tx.plaid_category)})." if tx.plaid_category else "."),
            key=f"tx_category_{shown}",
        )
        note = st.text_area("Note", value=tx.note or "", max_chars=ledger.MAX_NOTE, key=f"tx_note_{shown}")
        tags = st.text_input(  # shown with a space after each comma: room for it, or Streamlit would cut the tags
            "Tags (comma-separated)",
            value=", ".join(tx.tags),
            max_chars=ledger.MAX_TAGS_TEXT + ledger.MAX_TAGS,
            key=f"tx_tags_{shown}",
        )
        excluded = st.checkbox("Exclude from budgets and reports", value=tx.excluded, key=f"tx_excluded_{shown}")
        saved = st.form_submit_button("Save", key="tx_save")
    if saved and drawn != (opened, tx.version):
        _stale(tx, drawn)
    elif saved:
        _save(c, uid, tx, new_category, note, tags, excluded)
    st.session_state["tx_opened"] = (opened, tx.version)
    if said := st.session_state.pop("tx_flash", None):
        st.success(said)


def _stale(tx: ledger.TransactionView, drawn: tuple[str, int] | None) -> None:
    st.error(ledger.STALE_EDIT)
    # The form is drawn again with what is stored now; what was typed into the one drawn before is still in this
    # run's state (its widgets go at the end of it): shown once, to copy back in rather than type again.
    before = f"{drawn[0]}_{drawn[1]}" if drawn else ""
    typed = {label: str(st.session_state.get(f"tx_{name}_{before}", "")).strip()
             for label, name in (("Category", "category"), ("Note", "note"), ("Tags", "tags"))}  # fmt: skip
    stored = {"Category": tx.category_override or "", "Note": (tx.note or "").strip(), "Tags": ", ".join(tx.tags)}
    if lost := [f"{label}: {value}" for label, value in typed.items() if value and value != stored[label]]:
        st.caption("What you typed, to copy back in if you still want it:")
        st.code("\n".join(lost), language=None)


def _save(
    c: Container, uid: uuid.UUID, tx: ledger.TransactionView, category: str, note: str, tags: str, excluded: bool
) -> None:
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


def change_history(c: Container, uid: uuid.UUID, tx: ledger.TransactionView) -> None:
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
