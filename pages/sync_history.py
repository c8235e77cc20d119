"""Sync history: every run of the sync bot, and failures explained with the fix."""

import pandas as pd
import streamlit as st

from pages.ui.format import bank_labels, when
from pages.ui.session import require_user
from pages.ui.state import container
from pages.ui.text import md
from services import banking, sync

view = require_user()
st.title("Sync history")
runs = sync.list_runs(container(), view.user.id)
if not runs:
    st.info("No syncs yet. finsync syncs each linked bank by itself every few hours.")
    st.stop()

WHY = {"manual": "you pressed Sync now", "cli": "command line", "schedule": "on schedule", "first": "first sync after linking",
       "sign_in": "you signed in", "webhook": "new data at your bank", "repair": "you repaired the connection", "check": "self-check (sync)", "verify": "self-check"}  # fmt: skip
RESULT = {"ok": "synced", "preparing": "bank preparing data", "running": "running", "failed": "failed",
          "login_required": "needs sign-in", "already_syncing": "already syncing"}  # fmt: skip
RESULT_WIDTH, WHY_WIDTH = 150, 200  # pixels: "bank preparing data", "you repaired the connection" whole

# two connections to one bank read alike: each is named with its accounts' last digits, as on Accounts
labels = bank_labels(banking.list_items(container(), view.user.id))
latest: dict[object, sync.RunView] = {}
for run in runs:  # newest first: a failure matters only until a later run of that bank worked
    if run.item_id is not None:  # and only while the bank is linked
        latest.setdefault(run.item_id, run)
failing = [run for run in latest.values() if run.status not in ("ok", "preparing", "running")]
for run in failing:
    bank = labels.get(run.item_id, run.institution_name) if run.item_id else run.institution_name
    st.error(f"{when(run.started_at)}, {md(bank)}: {run.explanation} {run.fix}".strip())
if failing:  # the fixes (Repair, Remove, Sync now) are on Accounts
    st.page_link("accounts.py", label="Go to Accounts to fix it", icon=":material/account_balance:")

aside = sync.list_set_aside(container(), view.user.id)
if aside:
    with st.expander(f"Transactions your bank sent that finsync could not read ({len(aside)})", expanded=True):
        st.caption(
            "They are kept with the reason and tried again at every sync: they come in as soon as your bank "
            "sends them readable, or a finsync update can read them."
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Bank": a.institution_name,
                        "Date": a.day,
                        "Name": a.name,
                        "Amount": a.amount,
                        "Why": a.reason,
                        "First seen": when(a.first_seen_at),
                    }
                    for a in aside
                ]
            ),
            hide_index=True,
            width="stretch",
        )

table = pd.DataFrame(
    [
        {
            "Started": when(r.started_at),
            "Bank": labels.get(r.item_id, r.institution_name) if r.item_id else f"{r.institution_name} (removed)",
            "Result": RESULT.get(r.status, r.status),  # before "Why": on a phone the first three columns show
            "Why": WHY.get(r.trigger, r.trigger),
            "Added": r.added,
            "Modified": r.modified,
            "Removed": r.removed,
            "What happened": r.explanation,
            "What to do": r.fix,
            "Pages from Plaid": r.pages,
        }
        for r in runs
    ]
)
# When every run went well there is nothing to explain: no empty columns to squeeze the others
table = table.drop(columns=[c for c in ("What happened", "What to do") if not table[c].astype(bool).any()])
# The grid sizes a column to its first rows only: "bank preparing data" further down was cut off under "synced".
# These widths fit the longest words of each (checked in Chromium at 1280 and 390 pixels wide).
FITS = {"Result": st.column_config.TextColumn("Result", width=RESULT_WIDTH),
        "Why": st.column_config.TextColumn("Why", width=WHY_WIDTH)}  # fmt: skip
st.dataframe(table, hide_index=True, width="stretch", column_config=FITS)
