"""Sync history: every run of the sync bot, and failures explained with the fix."""

import pandas as pd
import streamlit as st

from pages.ui.session import require_user
from pages.ui.state import container
from services import sync

view = require_user()
st.title("Sync history")
runs = sync.list_runs(container(), view.user.id)
if not runs:
    st.info("No syncs yet. finsync syncs each linked bank by itself every few hours.")
    st.stop()

for run in runs:
    if run.status not in ("ok", "preparing", "running"):
        st.error(f"{run.started_at:%Y-%m-%d %H:%M} UTC, {run.institution_name}: {run.explanation} {run.fix}".strip())
        break

st.dataframe(
    pd.DataFrame(
        [
            {
                "Started (UTC)": r.started_at,
                "Bank": r.institution_name,
                "Why": r.trigger,
                "Result": r.status,
                "Pages": r.pages,
                "Added": r.added,
                "Modified": r.modified,
                "Removed": r.removed,
                "What happened": r.explanation,
                "What to do": r.fix,
            }
            for r in runs
        ]
    ),
    hide_index=True,
    width="stretch",
)
